"""The run inspector: what happened to runs, and the operator's restart and cancel.

`views` (mounted by `urls` under /admin/runs/) read through `selectors` (the run list and one
run's story) and `dashboard` (the counts); every operator action goes through `audit`, which
wraps the engine's transition and records who did it.
"""
