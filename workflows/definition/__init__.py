"""A workflow's definition: its typed model (`model`) and the one walk over its steps (`walk`).

The JSON form (docs/workflows.md) is what is stored, sent and exported; `model.Definition`
types it, and `walk` is how code finds, counts and moves steps in it.
"""
