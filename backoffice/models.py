"""Back-office rows of its own: none now.

The admin login throttle's counters (`LoginThrottle`) were replaced by django-axes' access
attempts (backoffice/security.py); migration 0004 dropped their table.
"""
