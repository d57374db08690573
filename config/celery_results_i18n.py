"""The labels of django-celery-results, in this project's catalog.

django-celery-results ships a Russian catalog only as a .po file (no .mo),
so its admin section stays English. Its msgids are listed here, marked for
makemessages, so that locale/ru translates them: Django merges every
catalog of the "django" domain, and LOCALE_PATHS comes first. Nothing
imports this module. Update the list when the package changes its labels.
"""

from django.utils.translation import gettext_noop

CELERY_RESULTS_MSGIDS = (
    gettext_noop("Celery Results"),
    gettext_noop("task result"),
    gettext_noop("task results"),
    gettext_noop("group result"),
    gettext_noop("group results"),
    gettext_noop("Task ID"),
    gettext_noop("Celery ID for the Task that was run"),
    gettext_noop("Periodic Task Name"),
    gettext_noop("Name of the Periodic Task which was run"),
    gettext_noop("Task Name"),
    gettext_noop("Name of the Task which was run"),
    gettext_noop("Task Positional Arguments"),
    gettext_noop("JSON representation of the positional arguments used with the task"),
    gettext_noop("Task Named Arguments"),
    gettext_noop("JSON representation of the named arguments used with the task"),
    gettext_noop("Task State"),
    gettext_noop("Current state of the task being run"),
    gettext_noop("Worker"),
    gettext_noop("Worker that executes the task"),
    gettext_noop("Result Content Type"),
    gettext_noop("Content type of the result data"),
    gettext_noop("Result Encoding"),
    gettext_noop("The encoding used to save the task result data"),
    gettext_noop("Result Data"),
    gettext_noop(
        "The data returned by the task.  Use content_encoding and content_type "
        "fields to read."
    ),
    gettext_noop("Created DateTime"),
    gettext_noop("Datetime field when the task result was created in UTC"),
    gettext_noop("Started DateTime"),
    gettext_noop("Datetime field when the task was started in UTC"),
    gettext_noop("Completed DateTime"),
    gettext_noop("Datetime field when the task was completed in UTC"),
    gettext_noop("Traceback"),
    gettext_noop("Text of the traceback if the task generated one"),
    gettext_noop("Task Meta Information"),
    gettext_noop(
        "JSON meta information about the task, such as information on child tasks"
    ),
    gettext_noop("Group ID"),
    gettext_noop("Celery ID for the Chord header group"),
    gettext_noop(
        "JSON serialized list of task result tuples. use .group_result() to decode"
    ),
    gettext_noop(
        "Starts at len(chord header) and decrements after each task is finished"
    ),
    gettext_noop("Celery ID for the Group that was run"),
    gettext_noop("Datetime field when the group result was created in UTC"),
    gettext_noop("Datetime field when the group was completed in UTC"),
    gettext_noop("Parameters"),
    gettext_noop("Result"),
)
