"""The back office's authentication backend: Django's ModelBackend, and the user's role read
with the user, so a request does not spend a query of its own on the user's groups."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from backoffice.roles import with_role_level


class RoleModelBackend(ModelBackend):
    def get_user(self, user_id):
        users = get_user_model()._default_manager
        user = with_role_level(users.all()).filter(pk=user_id).first()
        return user if user is not None and self.user_can_authenticate(user) else None
