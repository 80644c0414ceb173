from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back office"

    def ready(self) -> None:
        # Failed admin logins feed the login throttle (backoffice/security.py).
        from backoffice.security import connect_signals

        connect_signals()
