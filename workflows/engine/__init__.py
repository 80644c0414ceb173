"""The workflow engine: small modules with one job each.

`conditions` evaluates condition trees, `templating` resolves `{{ path }}` dynamic fields,
`dispatch` turns committed events into runs, `executor` leases a run and executes its steps,
`runs` holds the run transitions (start, restart, cancel) and `sweep` recovers lost work.
`store` is the only code that writes runs, step records, deliveries and the queue's rows.
"""
