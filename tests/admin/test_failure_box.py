"""Why a run failed, at first sight: the box atop the run's page, the
failed list's error column."""

import re

import pytest
from django.urls import reverse

from imports.admin.failure import failure_context
from imports.models import ImportRun

pytestmark = pytest.mark.django_db(transaction=True)


def run_page(client, run) -> str:
    return client.get(
        reverse("admin:imports_importrun_change", args=[run.pk])
    ).content.decode()


def test_a_failed_run_opens_with_its_failure(admin_client, failed_run):
    """Class, message, stage and the next step come before the counters."""
    run = failed_run()
    html = run_page(admin_client, run)
    box = html.index('id="run-failure"')
    assert box < html.index('class="run-counts"')
    assert box < html.index('id="run-events"')
    section = html[box : html.index("</section>", box)]
    assert "Why the run failed" in section
    assert f'<code class="run-failure-class">{run.error_class}</code>' in section
    assert "reading the source (extract)" in section
    assert "CSV file not found" in section
    assert "Fix the source or the project&#x27;s settings, then retry" in section
    # Its Retry button submits the object tools' retry form.
    assert 'form="run-retry-form"' in section
    assert 'id="run-retry-form"' in html


def test_the_box_follows_the_reader_rights(view_only_client, failed_run):
    """Without the retry permission there is no button, and the advice says
    who can retry."""
    html = run_page(view_only_client, failed_run())
    section = html[html.index('id="run-failure"') :]
    section = section[: section.index("</section>")]
    assert "failure-retry" not in section
    assert "retry permission" in section


def test_no_box_without_an_error(
    admin_client, succeeded_run, make_project, request_run
):
    assert 'id="run-failure"' not in run_page(admin_client, succeeded_run())
    assert 'id="run-failure"' not in run_page(admin_client, request_run(make_project()))


def test_the_advice_by_kind(failed_run):
    run = failed_run()
    assert failure_context(run, can_retry=True)["title"] == "Why the run failed"
    run.error_class = "DeletionLimitExceeded"
    assert "allowing the deletions" in failure_context(run, can_retry=True)["advice"]
    run.status = ImportRun.Status.CANCELLED
    context = failure_context(run, can_retry=True)
    assert context["title"] == "Why the run was cancelled"
    run.status = ImportRun.Status.RETRYING
    context = failure_context(run, can_retry=False)
    assert context["title"] == "Why the last attempt failed"
    assert "retries by itself" in context["advice"]


def test_the_failed_view_makes_room_for_the_error(admin_client, failed_run):
    """Progress and counts leave the failed view; the error, after the
    status, is one ellipsized line with the whole message as its tooltip."""
    run = failed_run()
    url = reverse("admin:imports_importrun_changelist")
    failed = admin_client.get(url, {"view": "failed"}).content.decode()
    every = admin_client.get(url).content.decode()
    assert "field-progress_display" in every
    assert "field-counts_display" not in failed
    assert "field-progress_display" not in failed
    # The error right after the status.
    assert failed.index("field-error_display") < failed.index("field-started_at")
    assert failed.index("field-status_display") < failed.index("field-error_display")
    cell = re.search(r'<td class="field-error_display">(.*?)</td>', failed, re.S)
    assert cell is not None
    assert f'title="{run.error_message}"' in cell.group(1)
