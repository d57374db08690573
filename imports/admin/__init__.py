"""Admin for projects, import runs and their events: where operators live.

Every button and action calls one service of ``imports.services`` and reports
its outcome as a message; nothing here changes a run's state itself. The
modules: ``projects`` and ``runs`` (the ModelAdmins), ``dashboard`` (the
dashboard page and its chart), ``actions`` (the shape of bulk actions),
``forms`` and ``display`` (HTML fragments), ``tables`` (the project page's
Table panel), ``destinations`` (other databases tables land in, their
passwords masked), and ``connectors`` (the connector page with its slots
and waiting runs, which are concepts of this app), ``notifications``
(the channels and their outbox).
"""

from django.contrib import admin

from imports.admin import (
    connectors,  # noqa: F401 - the connector page
    destinations,  # noqa: F401 - the destination page
    notifications,  # noqa: F401 - notification channels and their outbox
)
from imports.admin.projects import ProjectAdmin
from imports.admin.runs import ImportRunAdmin
from imports.models import ImportRun, Project

admin.site.register(Project, ProjectAdmin)
admin.site.register(ImportRun, ImportRunAdmin)

__all__ = ["ImportRunAdmin", "ProjectAdmin"]
