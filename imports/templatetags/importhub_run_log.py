"""The run page's log section: the lines ``imports.run_log`` kept."""

import logging

from django import template
from django.utils.translation import gettext

from imports.models import ImportRunLogLine
from imports.run_log import TRUNCATED_LOGGER

register = template.Library()


@register.simple_tag
def run_log_lines(run) -> list[ImportRunLogLine]:
    """The run's log lines, oldest first; the cut-off note in the reader's
    language."""
    lines = list(run.log_lines.order_by("at", "id"))
    for line in lines:
        line.level_name = logging.getLevelName(line.level)
        if line.logger == TRUNCATED_LOGGER:
            line.message = gettext(
                "The log of this run reached its limit of %(count)s lines; "
                "later lines were dropped."
            ) % {"count": line.message.rsplit(" ", 1)[-1]}
    return lines
