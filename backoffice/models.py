"""Back-office rows of its own: the admin login throttle's counters."""

from __future__ import annotations

from django.db import models


class LoginThrottle(models.Model):
    """Failed admin logins of one (username, client address): counted in a window, then locked.

    A row in the database (not a per-process cache) so every web worker and every restart sees
    the same count. `backoffice.security` is the only writer.
    """

    username = models.CharField(max_length=150)
    ip = models.CharField(max_length=45)
    failures = models.PositiveIntegerField(default=0)
    window_started = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["username", "ip"], name="login_throttle_username_ip")
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.ip}: {self.failures} failure(s)"
