"""Bulk restart and cancel as background jobs (`RunBatch`): created by the runs list, the API
and the `runs_restart` / `runs_cancel` commands, applied by the workers (docs/inspector.md)."""
