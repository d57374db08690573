"""Who may use the HTTP API: Django model permissions, as in the admin."""

from rest_framework.permissions import BasePermission


class CanStartImports(BasePermission):
    """Starting an import needs ``imports.add_importrun``."""

    message = "Starting imports needs the permission imports.add_importrun."

    def has_permission(self, request, view) -> bool:
        return bool(
            request.user
            and request.user.is_authenticated
            and request.user.has_perm("imports.add_importrun")
        )


class CanViewRuns(BasePermission):
    """Reading runs needs ``imports.view_importrun`` (or the add permission)."""

    message = "Reading runs needs the permission imports.view_importrun."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and (
                user.has_perm("imports.view_importrun")
                or user.has_perm("imports.add_importrun")
            )
        )
