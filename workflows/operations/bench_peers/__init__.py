"""The systems `bench_engine` compares, one module each, and the rounds that interleave them.

`work` is the 5-step work they all do (the same billing service calls per step), `rounds` runs
the systems round by round and prints the table. Procrastinate and DBOS Transact are optional
(`pip install -e .[bench]`): their modules import them only when measured.
"""
