"""The project page's pause banner and its one-click Resume."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from imports.models import Project
from imports.services.pause import project_resume


class ProjectPauseMixin:
    """For ``ProjectAdmin``: the banner's context and the resume view."""

    def pause_urls(self, info: str) -> list:
        return [
            path(
                "<path:object_id>/resume/",
                self.admin_site.admin_view(require_POST(self.resume_view)),
                name=f"{info}_resume",
            )
        ]

    def pause_banner(self, request, project: Project) -> dict | None:
        """What the banner says, rendered now in the reader's language."""
        if project.paused_at is None:
            return None
        details = project.pause_details or {}
        run_id = details.get("run_id")
        return {
            "text": gettext(
                "Paused automatically on %(at)s after %(failures)s failed runs "
                "in a row: it accepts no imports, scheduled ones are skipped."
            )
            % {
                "at": timezone.localtime(project.paused_at).strftime(
                    "%Y-%m-%d %H:%M:%S %Z"
                ),
                "failures": details.get("failures", "?"),
            },
            "error": details.get("error", ""),
            "run_id": run_id,
            "run_url": run_id
            and reverse("admin:imports_importrun_change", args=[run_id]),
            "can_resume": self.has_change_permission(request, project),
        }

    def resume_view(self, request, object_id):
        project = self._object_or_404(request, object_id)
        if not self.has_change_permission(request, project):
            raise PermissionDenied
        if project_resume(project=project, resumed_by=request.user.get_username()):
            self.message_user(
                request,
                gettext("Project “%(project)s” was resumed; it accepts imports.")
                % {"project": project},
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                gettext("Project “%(project)s” was not paused.") % {"project": project},
                messages.INFO,
            )
        return HttpResponseRedirect(self._change_url(project))
