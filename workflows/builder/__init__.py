"""The browser builder: the admin pages that edit a workflow's draft, step by step.

`views` (the pages, mounted by `urls` under /admin/workflows/) change the draft through
`draft_edits`, drawing it with `canvas` and each step's form from `forms` (+ `widgets`); `picker`
lists the `{{ }}` fields a step may use and `test_run` dry-runs the draft against a past event.
"""
