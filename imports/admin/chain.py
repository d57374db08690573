"""The runs list's try numbers: one count per page, shown by the trigger."""

from django.contrib.admin.views.main import ChangeList
from django.utils.html import format_html
from django.utils.translation import gettext

from imports.models import ImportRun
from imports.services.chains import run_chain_tries


class RunChangeList(ChangeList):
    """Sets ``chain_try`` on each run of the page, in one pass."""

    def get_results(self, request):
        super().get_results(request)
        runs = list(self.result_list)  # evaluates (and caches) the page
        tries = run_chain_tries(runs)
        for run in runs:
            run.chain_try = tries[run.pk]


def chain_try(run: ImportRun) -> int:
    """The run's try across its chain (set by the list, or counted here)."""
    value = getattr(run, "chain_try", None)
    if value is None:
        value = run.chain_try = run_chain_tries([run])[run.pk]
    return value


def trigger_label(run: ImportRun) -> str:
    """The trigger, and the try number when the run goes on from others."""
    tries = chain_try(run)
    if tries <= run.attempt:
        return run.get_trigger_display()
    return format_html(
        '{} <span class="run-try">{}</span>',
        run.get_trigger_display(),
        gettext("try %(try)s") % {"try": tries},
    )


def try_label(run: ImportRun) -> str:
    """The run page's try: across the chain, and this run's own attempt."""
    tries = chain_try(run)
    if tries <= run.attempt:
        return str(run.attempt)
    return gettext(
        "%(try)s (attempt %(attempt)s of this run, after %(before)s in the "
        "runs it retries)"
    ) % {"try": tries, "attempt": run.attempt, "before": tries - run.attempt}
