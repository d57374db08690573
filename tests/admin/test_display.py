"""The admin's HTML fragments: formats, badges, counts; every value escaped."""

import datetime

import pytest

from imports.admin import display
from imports.models import ImportRun
from imports.services.dashboard import ErrorStage


def run(**fields) -> ImportRun:
    fields.setdefault("status", ImportRun.Status.SUCCEEDED)
    return ImportRun(pk=fields.pop("pk", 5), **fields)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (59, "0:59"), (61, "1:01"), (3600, "1:00:00"), (3725, "1:02:05")],
)
def test_format_duration(seconds, text):
    assert display.format_duration(datetime.timedelta(seconds=seconds)) == text


def test_format_duration_of_nothing():
    assert display.format_duration(None) == "—"


def test_format_count_groups_digits_with_a_thin_space():
    assert display.format_count(1234567) == "1\u202f234\u202f567"
    assert display.format_count(12) == "12"


def test_first_line():
    assert display.first_line("one\ntwo") == "one"
    assert display.first_line("") == ""
    assert display.first_line(None) == ""
    assert display.first_line("x" * 10, limit=5) == "xxxx…"


def test_status_badge():
    assert display.status_badge(run(status="failed")) == (
        '<span class="run-status run-status-failed">Failed</span>'
    )


def test_progress_bar_by_status():
    active = display.progress_bar(run(status="running", rows_read=1500))
    assert '<progress class="run-progress" title="1\u202f500"></progress>' in active
    assert 'data-rows-read="1500">1\u202f500 rows read</span>' in active
    done = display.progress_bar(run(rows_read=1))
    assert 'value="1" max="1"' in done and "1 row read" in done
    failed = display.progress_bar(run(status="failed"))
    assert 'value="0" max="1"' in failed


def test_run_counts_and_table():
    counted = run(
        rows_read=9,
        rows_inserted=1,
        rows_updated=2,
        rows_unchanged=3,
        rows_deleted=4,
        rows_rejected=5,
        rows_duplicates=6,
    )
    line = display.run_counts(counted)
    for title, text in [
        ("inserted", "+1"),
        ("updated", "~2"),
        ("unchanged", "=3"),
        ("deleted", "−4"),
        ("rejected", "✗5"),
        ("duplicates", "⧉6"),
    ]:
        assert f'<span class="run-count" title="{title}">{text}</span>' in line
    table = display.counts_table(counted)
    assert table.startswith('<table class="run-counts">')
    assert "<tr><th>rows read</th><td>9</td></tr>" in table
    assert "<tr><th>rejected</th><td>5</td></tr>" in table
    assert "<tr><th>duplicate rows</th><td>6</td></tr>" in table


def test_run_error_escapes_the_message():
    """An error text from a source is shown as text, never as markup."""
    html = display.run_error(
        run(error_class="PermanentSourceError", error_message="<script>x</script>\n2")
    )
    assert "<script>" not in html
    assert "<b>PermanentSourceError</b> &lt;script&gt;x&lt;/script&gt;" in html
    assert display.run_error(run()) == ""


def test_error_stage_labels():
    assert display.error_stage_label(None) == "—"
    assert display.error_stage_label(ErrorStage.LOAD) == "writing the records (load)"


def test_retry_links():
    assert display.retry_links(run(), []) == "—"
    retry = run(pk=6, status="queued")
    html = display.retry_links(run(retry_of_id=4), [retry])
    assert (
        '<a class="retry-of" href="/admin/imports/importrun/4/change/">#4</a>' in html
    )
    assert '<a class="retry" href="/admin/imports/importrun/6/change/">#6</a>' in html
    assert "<br>" in html


def test_lock_status():
    assert display.lock_status(None) == "Free: no import is active."
    assert display.lock_status(run(status="queued")) == (
        'Importing: <a href="/admin/imports/importrun/5/change/">#5</a> '
        '<span class="run-status run-status-queued">Queued</span>'
    )
