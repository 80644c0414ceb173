"""Admin pages of the ground floor: users and groups, login lockouts (the Admin role's alone)."""

from __future__ import annotations

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from backoffice.admin_base import RoleAdminMixin


class RoleUserAdmin(RoleAdminMixin, UserAdmin):
    view_capability = add_capability = change_capability = delete_capability = "users.manage"


class RoleGroupAdmin(RoleAdminMixin, GroupAdmin):
    view_capability = add_capability = change_capability = delete_capability = "users.manage"


# Users and groups are the Admin role's alone, whatever a user's model permissions say.
admin.site.unregister(User)
admin.site.unregister(Group)
admin.site.register(User, RoleUserAdmin)
admin.site.register(Group, RoleGroupAdmin)


# The login lockout's records (django-axes, docs/security.md) name users and their addresses:
# the Admin role's alone. Deleting an access attempt unlocks its user name and address.
class RoleAccessAttemptAdmin(RoleAdminMixin, AccessAttemptAdmin):
    view_capability = delete_capability = "users.manage"


class RoleAccessLogAdmin(RoleAdminMixin, AccessLogAdmin):
    view_capability = "users.manage"


class RoleAccessFailureLogAdmin(RoleAdminMixin, AccessFailureLogAdmin):
    view_capability = "users.manage"


admin.site.register(AccessAttempt, RoleAccessAttemptAdmin)
admin.site.register(AccessLog, RoleAccessLogAdmin)
admin.site.register(AccessFailureLog, RoleAccessFailureLogAdmin)
