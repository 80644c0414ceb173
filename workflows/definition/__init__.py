"""A workflow's definition: what a workflow is, apart from running or editing it.

The JSON form (docs/workflows.md) is what is stored, sent and exported; `model.Definition`
types it, `walk` is how code finds, counts and moves steps in it, `validation` is the one set
of rules it must meet, and `rows` turns it into a version's rows and back. `event_types` is the
catalogue of trigger events and their fields; `money` formats amounts in minor units.
"""
