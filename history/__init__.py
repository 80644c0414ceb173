"""Who did what: a history of changes recorded by database triggers (docs/history.md)."""
