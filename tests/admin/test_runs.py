"""The runs' admin: ready views, columns, the run page, Retry and Cancel."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from imports.admin.runs import DELETION_LIMIT_ERROR
from imports.exceptions import PROJECT_BUSY_MESSAGE
from imports.models import ImportRun, ImportRunEvent

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:imports_importrun_changelist"


def change_url(run) -> str:
    return reverse("admin:imports_importrun_change", args=[run.pk])


def shown_messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def listed_ids(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


class TestChangelist:
    def test_active_and_failed_views(
        self, admin_client, make_project, request_run, failed_run, succeeded_run
    ):
        """The Active view lists active runs only, the Failed view failed ones."""
        active = request_run(make_project())
        failed = failed_run()
        succeeded = succeeded_run()
        url = reverse(CHANGELIST)
        response = admin_client.get(url, {"view": "active"})
        assert listed_ids(response) == {active.pk}
        response = admin_client.get(url, {"view": "failed"})
        assert listed_ids(response) == {failed.pk}
        response = admin_client.get(url)
        assert listed_ids(response) == {active.pk, failed.pk, succeeded.pk}
        html = response.content.decode()
        assert 'id="view-active"' in html and "Active (1)" in html
        assert "Failed (1)" in html

    def test_the_active_view_refreshes_itself(self, admin_client):
        """Only the active view carries the self-refresh marker and its script."""
        url = reverse(CHANGELIST)
        active = admin_client.get(url, {"view": "active"}).content.decode()
        assert 'data-importhub-refresh="3000"' in active
        assert 'data-importhub-targets="#changelist-form"' in active
        assert "imports/admin/autorefresh.js" in active
        failed = admin_client.get(url, {"view": "failed"}).content.decode()
        assert "data-importhub-refresh" not in failed

    def test_filters(self, admin_client, make_project, request_run, failed_run):
        """Runs filter by status, project, connector, trigger and date."""
        project = make_project()
        active = request_run(project, trigger=ImportRun.Trigger.API)
        failed = failed_run()
        url = reverse(CHANGELIST)
        cases = [
            ({"status__exact": "failed"}, {failed.pk}),
            ({"status__exact": "queued"}, {active.pk}),
            ({"project__id__exact": project.pk}, {active.pk}),
            (
                {"project__connector__id__exact": failed.project.connector_id},
                {failed.pk},
            ),
            ({"trigger__exact": "api"}, {active.pk}),
            (
                {
                    "created_at__year": active.created_at.year,
                    "created_at__month": active.created_at.month,
                    "created_at__day": active.created_at.day,
                },
                {active.pk, failed.pk},
            ),
        ]
        for params, expected in cases:
            response = admin_client.get(url, params)
            assert response.status_code == 200, params
            assert listed_ids(response) == expected, params

    def test_columns(self, admin_client, failed_run, succeeded_run):
        """Status (coloured), progress, counts and the error's first line."""
        failed = failed_run()
        succeeded_run(rows=4)
        html = admin_client.get(reverse(CHANGELIST)).content.decode()
        assert '<span class="run-status run-status-failed">Failed</span>' in html
        assert '<span class="run-status run-status-succeeded">Succeeded</span>' in html
        assert "4 rows read" in html
        assert '<progress class="run-progress" value="1" max="1">' in html
        assert '<span class="run-count" title="inserted">+4</span>' in html
        assert "<b>PermanentSourceError</b> CSV file not found" in html
        assert failed.error_message.splitlines()[0] in html

    def test_duplicates_are_counted_in_the_list_and_on_the_page(
        self, admin_client, succeeded_run
    ):
        """Rows whose key repeated show beside the other counts."""
        run = succeeded_run(rows=4)
        ImportRun.objects.filter(pk=run.pk).update(rows_duplicates=3)
        html = admin_client.get(reverse(CHANGELIST)).content.decode()
        assert '<span class="run-count" title="duplicates">⧉3</span>' in html
        html = admin_client.get(change_url(run)).content.decode()
        assert "<tr><th>duplicate rows</th><td>3</td></tr>" in html


class TestRunPage:
    def test_failed_run_page(self, admin_client, failed_run):
        """The page shows progress, counts, the error with where, the timeline."""
        run = failed_run()
        html = admin_client.get(change_url(run)).content.decode()
        assert "run-status-failed" in html
        assert "PermanentSourceError" in html
        assert "CSV file not found" in html
        assert "reading the source (extract)" in html
        assert 'class="run-counts"' in html
        assert '<ol class="run-timeline">' in html
        for kind in ("Requested", "Started", "Failed"):
            assert f'<span class="event-kind">{kind}</span>' in html
        assert "by tester" in html
        assert 'id="run-retry"' in html
        assert 'id="run-cancel"' not in html
        assert "data-importhub-refresh" not in html

    def test_active_run_page_refreshes_and_can_be_cancelled(
        self, admin_client, make_project, request_run
    ):
        """An active run's page refreshes itself and offers Cancel, not Retry."""
        run = request_run(make_project())
        html = admin_client.get(change_url(run)).content.decode()
        assert 'data-importhub-targets="#importhub-live"' in html
        assert "<progress" in html
        assert 'id="run-cancel"' in html
        assert 'id="run-retry"' not in html

    def test_links_between_a_run_and_its_retries(self, admin_client, failed_run):
        """A retried run links to its retry and the retry back to it."""
        run = failed_run()
        admin_client.post(reverse("admin:imports_importrun_retry", args=[run.pk]))
        retry = ImportRun.objects.get(retry_of=run)
        html = admin_client.get(change_url(run)).content.decode()
        assert f'<a class="retry" href="{change_url(retry)}">#{retry.pk}</a>' in html
        html = admin_client.get(change_url(retry)).content.decode()
        assert f'<a class="retry-of" href="{change_url(run)}">#{run.pk}</a>' in html


class TestRetryButton:
    def retry(self, client, run):
        return client.post(
            reverse("admin:imports_importrun_retry", args=[run.pk]), follow=True
        )

    def test_retry_starts_a_linked_run(self, admin_client, failed_run, published):
        """Retry starts a new run through the guard and opens it."""
        run = failed_run()
        sent = published()
        response = self.retry(admin_client, run)
        retry = ImportRun.objects.get(retry_of=run)
        assert retry.trigger == ImportRun.Trigger.RETRY
        assert retry.requested_by == "admin"
        assert response.redirect_chain[-1][0] == change_url(retry)
        assert shown_messages(response) == [
            ("success", f"Run #{run.pk} was retried as run #{retry.pk}.")
        ]
        assert published() == sent + 1

    def test_retry_of_a_busy_project_shows_the_russian_message(
        self, admin_client, failed_run, request_run, published
    ):
        """A busy project: the exact Russian message as an error, nothing sent."""
        run = failed_run()
        request_run(run.project)
        sent = published()
        response = self.retry(admin_client, run)
        assert shown_messages(response) == [
            ("error", PROJECT_BUSY_MESSAGE.format(project_id=run.project_id))
        ]
        assert response.redirect_chain[-1][0] == change_url(run)
        assert not ImportRun.objects.filter(retry_of=run).exists()
        assert published() == sent

    def test_an_active_run_is_not_retried(
        self, admin_client, make_project, request_run
    ):
        """Retry of an active run is refused with the service's reason."""
        run = request_run(make_project())
        response = self.retry(admin_client, run)
        [(level, text)] = shown_messages(response)
        assert level == "error"
        assert "only failed or cancelled runs are retried" in text

    def test_get_is_not_allowed(self, admin_client, failed_run):
        """The button's URL accepts POST only."""
        run = failed_run()
        url = reverse("admin:imports_importrun_retry", args=[run.pk])
        assert admin_client.get(url).status_code == 405

    def test_unknown_run_is_404(self, admin_client):
        url = reverse("admin:imports_importrun_retry", args=[999999])
        assert admin_client.post(url).status_code == 404


class TestCancelButton:
    def cancel(self, client, run, **data):
        return client.post(
            reverse("admin:imports_importrun_cancel", args=[run.pk]),
            data,
            follow=True,
        )

    def test_cancel_an_active_run(self, admin_client, make_project, request_run):
        """Cancel stops an active run and records who did it."""
        run = request_run(make_project())
        response = self.cancel(admin_client, run, reason="wrong file")
        run.refresh_from_db()
        assert run.status == ImportRun.Status.CANCELLED
        assert shown_messages(response) == [
            ("success", f"Run #{run.pk} was cancelled.")
        ]
        event = run.events.get(kind=ImportRunEvent.Kind.CANCELLED)
        assert (event.actor, event.message) == ("admin", "wrong file")

    def test_a_finished_run_is_not_cancelled(self, admin_client, failed_run):
        run = failed_run()
        response = self.cancel(admin_client, run)
        [(level, text)] = shown_messages(response)
        assert level == "error"
        assert "cannot be cancelled" in text
        run.refresh_from_db()
        assert run.status == ImportRun.Status.FAILED


class TestBulkActions:
    def act(self, client, action, runs):
        return client.post(
            reverse(CHANGELIST),
            {"action": action, "_selected_action": [r.pk for r in runs]},
            follow=True,
        )

    def test_retry_selected_says_how_many_and_why_not(
        self, admin_client, failed_run, make_project, request_run
    ):
        """Two failed runs retried; an active one and a busy project are not."""
        first, second = failed_run(), failed_run()
        busy = failed_run()
        request_run(busy.project)
        active = request_run(make_project())
        response = self.act(
            admin_client, "retry_selected", [first, second, busy, active]
        )
        [(level, text)] = shown_messages(response)
        assert level == "warning"
        assert text.startswith("2 runs were retried. 2 were not retried: ")
        assert PROJECT_BUSY_MESSAGE.format(project_id=busy.project_id) in text
        assert f"Run {active.pk} is Queued" in text
        assert ImportRun.objects.filter(retry_of__in=[first, second]).count() == 2

    def test_retry_selected_all_succeed(self, admin_client, failed_run):
        run = failed_run()
        response = self.act(admin_client, "retry_selected", [run])
        assert shown_messages(response) == [("success", "1 run was retried.")]

    def test_retry_selected_all_fail(self, admin_client, make_project, request_run):
        run = request_run(make_project())
        response = self.act(admin_client, "retry_selected", [run])
        [(level, text)] = shown_messages(response)
        assert level == "error"
        assert text.startswith("0 runs were retried. 1 was not retried: ")

    def test_cancel_selected(self, admin_client, make_project, request_run, failed_run):
        """Active runs are cancelled; a finished one is named with the reason."""
        one, two = request_run(make_project()), request_run(make_project())
        done = failed_run()
        # The action asks first (a confirmation page with a reason) ...
        page = admin_client.post(
            reverse(CHANGELIST),
            {"action": "cancel_selected", "_selected_action": [one.pk, two.pk]},
        )
        assert page.status_code == 200
        assert 'id="cancel-form"' in page.content.decode()
        assert ImportRun.objects.filter(pk=one.pk).active().exists()
        # ... and cancels once confirmed.
        response = admin_client.post(
            reverse(CHANGELIST),
            {
                "action": "cancel_selected",
                "_selected_action": [one.pk, two.pk, done.pk],
                "post": "yes",
            },
            follow=True,
        )
        [(level, text)] = shown_messages(response)
        assert level == "warning"
        assert text.startswith("2 runs were cancelled. 1 was not cancelled: ")
        assert f"Run {done.pk} is Failed and cannot be cancelled." in text
        assert set(
            ImportRun.objects.filter(pk__in=[one.pk, two.pk]).values_list(
                "status", flat=True
            )
        ) == {ImportRun.Status.CANCELLED}

    def test_no_bulk_delete_and_no_delete_of_an_active_run(
        self, admin_client, make_project, request_run
    ):
        """Active runs hold their project: they are cancelled, never deleted."""
        run = request_run(make_project())
        response = admin_client.get(reverse(CHANGELIST))
        actions = [
            name for name, _ in response.context["action_form"].fields["action"].choices
        ]
        assert "delete_selected" not in actions
        assert {"retry_selected", "cancel_selected"} <= set(actions)
        url = reverse("admin:imports_importrun_delete", args=[run.pk])
        assert admin_client.post(url, {"post": "yes"}).status_code == 403


@pytest.fixture
def deletion_limited_run(failed_run):
    """A failed replace run the deletion limit stopped before its merge."""

    def make():
        run = failed_run()
        ImportRun.objects.filter(pk=run.pk).update(
            error_class=DELETION_LIMIT_ERROR,
            error_message="The run would delete 80 of 100 records (80%); "
            "the project allows 50%.",
            # A text written as is: no message id renders over it.
            error_message_id="",
            error_message_params={},
        )
        run.refresh_from_db()
        return run

    return make


class TestRetryAllowingDeletions:
    def url(self, run) -> str:
        return reverse("admin:imports_importrun_retry_deletions", args=[run.pk])

    def test_offered_only_for_a_run_the_limit_stopped(
        self, admin_client, deletion_limited_run, failed_run
    ):
        """The button shows beside Retry for such a run, and for no other."""
        limited = deletion_limited_run()
        html = admin_client.get(change_url(limited)).content.decode()
        assert 'id="run-retry-deletions"' in html
        assert f'href="{self.url(limited)}"' in html
        assert 'id="run-retry"' in html
        other = failed_run()
        html = admin_client.get(change_url(other)).content.decode()
        assert 'id="run-retry-deletions"' not in html

    def test_the_confirmation_page_says_what_is_at_stake(
        self, admin_client, deletion_limited_run
    ):
        run = deletion_limited_run()
        page = admin_client.get(self.url(run))
        assert page.status_code == 200
        html = page.content.decode()
        assert 'id="retry-deletions-form"' in html
        assert "would delete 80 of 100 records" in html
        assert not ImportRun.objects.filter(retry_of=run).exists()

    def test_confirming_retries_with_deletions_allowed(
        self, admin_client, deletion_limited_run, published
    ):
        """The retry service is called with confirm_deletions=True.

        Needs ``import_run_retry(..., confirm_deletions=...)`` (issue 11).
        """
        run = deletion_limited_run()
        sent = published()
        response = admin_client.post(self.url(run), follow=True)
        retry = ImportRun.objects.get(retry_of=run)
        assert retry.deletions_confirmed is True
        assert retry.requested_by == "admin"
        assert response.redirect_chain[-1][0] == change_url(retry)
        assert shown_messages(response) == [
            (
                "success",
                f"Run #{run.pk} was retried as run #{retry.pk}, which may delete "
                "more than the project's limit.",
            )
        ]
        assert published() == sent + 1

    def test_refused_for_a_run_the_limit_did_not_stop(self, admin_client, failed_run):
        run = failed_run()
        response = admin_client.post(self.url(run), follow=True)
        [(level, text)] = shown_messages(response)
        assert level == "error"
        assert "was not stopped by the deletion limit" in text
        assert not ImportRun.objects.filter(retry_of=run).exists()

    def test_needs_the_retry_permission(self, view_only_client, deletion_limited_run):
        run = deletion_limited_run()
        html = view_only_client.get(change_url(run)).content.decode()
        assert 'id="run-retry-deletions"' not in html
        assert view_only_client.get(self.url(run)).status_code == 403
        assert view_only_client.post(self.url(run)).status_code == 403
        assert not ImportRun.objects.filter(retry_of=run).exists()
