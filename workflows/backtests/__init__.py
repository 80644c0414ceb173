"""Backtests: a workflow version replayed against stored events, writing nothing to billing.

`recording.py` is the walk's third policy (after the executor and the builder's test run):
one event at a time, the dispatcher's own trigger match, the test run's recording, and the
money each step would move. `jobs.py` is the background job (keyset chunks, a heartbeat,
continuation, resume from the sweep); `requests.py` checks what is asked (range, version);
`api.py` is `/api/v1/workflows/{id}/backtests` and `/api/v1/backtests/{id}`.
"""
