"""The replace mode's safety net: a run may not silently empty a project.

A truncated file, an empty API page or a query that lost its WHERE clause
looks, to a replace, like a source that dropped most of its rows. Before
the merge writes anything, it counts what it would delete; above the
project's limit, or when the source gave no rows at all, the run fails and
the project's data stays as it was, until an operator confirms the run.
"""

from dataclasses import dataclass

from connectors.messages import Message, gettext_noop

from .results import DeletionLimitExceeded


@dataclass(frozen=True)
class DeletionLimit:
    """How much of a project's rows one replace may delete.

    ``percent`` is the project's ``replace_delete_limit`` (0 to 100; 100
    allows any deletion from a source that has rows), ``confirmed`` the
    run's ``deletions_confirmed``, which lifts the limit.
    """

    percent: int
    confirmed: bool = False

    def needs_counts(self, *, staged_empty: bool) -> bool:
        """Whether ``check()`` can refuse, so the counts are worth taking."""
        return not self.confirmed and (staged_empty or self.percent < 100)

    def check(self, *, deleting: int, current: int, staged_empty: bool) -> None:
        """Refuse deleting ``deleting`` of the project's ``current`` rows.

        Raises:
            DeletionLimitExceeded: unless the run is confirmed, when the
                source gave no rows and the project has some, or when
                ``deleting`` is more than ``percent`` of ``current``.
        """
        if self.confirmed or current == 0:
            return
        if staged_empty:
            raise DeletionLimitExceeded(
                Message(
                    gettext_noop(
                        "The source gave no rows and would delete all "
                        "%(current)s of the project's rows; nothing was "
                        "changed. Confirm the run to allow it."
                    ),
                    current=f"{current:,}",
                )
            )
        if deleting * 100 > self.percent * current:
            share = _share(deleting, current, above=self.percent)
            raise DeletionLimitExceeded(
                Message(
                    gettext_noop(
                        "The source would delete %(deleting)s of %(current)s "
                        "rows (%(share)s%%), above the project's limit of "
                        "%(limit)s%%; nothing was changed. Confirm the run to "
                        "allow it."
                    ),
                    deleting=f"{deleting:,}",
                    current=f"{current:,}",
                    share=share,
                    limit=self.percent,
                )
            )


def _share(part: int, whole: int, *, above: int) -> str:
    """``part`` as a percentage of ``whole``, with as few decimals as show it
    is above ``above`` (50.4, not 50, for a limit of 50)."""
    share = part * 100 / whole
    for decimals in (0, 1, 2):
        text = f"{share:.{decimals}f}"
        if float(text) > above:
            return text
    return text
