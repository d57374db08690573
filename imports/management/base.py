"""What the operators' commands share: exit statuses, argument parsing."""

import datetime
import itertools
import re

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from imports.exceptions import ConnectorBusy, ImportRequestError, ProjectBusy

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_ARGUMENTS = 2
EXIT_BUSY = 3

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def bad_arguments(message: str) -> CommandError:
    return CommandError(message, returncode=EXIT_BAD_ARGUMENTS)


class OperatorCommand(BaseCommand):
    """A command whose bad arguments always end with exit status 2.

    On the command line argparse already exits 2; called with
    ``call_command`` the error becomes a ``CommandError`` with returncode 2
    instead of Django's default 1, so both ways agree.
    """

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        argparse_error = parser.error

        def error(message):
            if parser.called_from_command_line:
                argparse_error(message)  # prints the usage and exits 2
            raise bad_arguments(f"Error: {message}")

        parser.error = error
        return parser


def is_busy(exc: ImportRequestError) -> bool:
    """A refusal that will pass by itself: the project or connector is busy."""
    return isinstance(exc, ProjectBusy | ConnectorBusy)


def is_invalid(exc: ImportRequestError) -> bool:
    """A refusal that retrying will not fix: a 4xx other than busy."""
    return not is_busy(exc) and 400 <= exc.status_code < 500


def parse_since(value: str) -> datetime.datetime:
    """An ISO date-time (``2025-01-31T08:00``) or an age (``24h``, ``7d``).

    An age counts back from now; a date-time without a zone is in the
    current time zone.
    """
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        return timezone.now() - datetime.timedelta(seconds=seconds)
    try:
        moment = parse_datetime(text)
        if moment is None:
            date = datetime.date.fromisoformat(text)
            moment = datetime.datetime.combine(date, datetime.time())
    except ValueError:
        moment = None
    if moment is None:
        raise bad_arguments(
            f"--since {value!r}: give an ISO date-time such as "
            "2025-01-31T08:00 or an age such as 30m, 24h or 7d."
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def parse_id_list(value: str, *, option: str) -> list[int]:
    """``1,2, 3`` as ``[1, 2, 3]``; anything else is a bad argument."""
    ids = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit():
            raise bad_arguments(
                f"{option} {value!r}: expected ids separated by commas, "
                f"such as 1,2,3; {part!r} is not an id."
            )
        ids.append(int(part))
    if not ids:
        raise bad_arguments(f"{option}: no ids given.")
    return ids


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def batches(items, size: int):
    """Lists of up to ``size`` items drawn from any iterable, lazily."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
