"""Running Billflow: health, stall alerts, failure notifications, retention, schedules.

`health` computes the report behind `/health` (`views`), the `health` command and the metrics;
`notifications` sends run-failure digests and operator alerts; `retention` prunes old rows;
`schedules` installs the periodic jobs; `bench` is what the load benchmarks share.
"""
