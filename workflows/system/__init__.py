"""System workflows: the ones Billflow ships (one per core billing event).

`catalogue` defines them and installs or updates them per environment with their settings;
`views` (mounted by `urls` under /admin/system-workflows/) edit those settings.
"""
