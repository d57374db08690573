"""Cancel asks first, with an optional reason that the run's log keeps."""

import pytest
from django.urls import reverse

from imports.models import ImportRun, ImportRunEvent

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:imports_importrun_changelist"


def cancel_url(run) -> str:
    return reverse("admin:imports_importrun_cancel", args=[run.pk])


def test_the_run_pages_cancel_opens_a_confirmation(
    admin_client, make_project, request_run
):
    """The button is a link to a page that asks; opening it changes nothing."""
    run = request_run(make_project(name="warehouse"))
    html = admin_client.get(
        reverse("admin:imports_importrun_change", args=[run.pk])
    ).content.decode()
    assert f'href="{cancel_url(run)}" class="importhub-danger" id="run-cancel"' in html
    page = admin_client.get(cancel_url(run))
    assert page.status_code == 200
    text = page.content.decode()
    assert f"Cancel run #{run.pk}?" in text
    assert 'name="reason"' in text
    assert 'id="cancel-confirm"' in text
    assert "warehouse" in text
    run.refresh_from_db()
    assert run.is_active


def test_confirming_records_the_reason(admin_client, make_project, request_run):
    response = admin_client.post(
        cancel_url(run := request_run(make_project())),
        {"reason": "  wrong file uploaded  "},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse(
        "admin:imports_importrun_change", args=[run.pk]
    )
    run.refresh_from_db()
    assert run.status == ImportRun.Status.CANCELLED
    event = run.events.get(kind=ImportRunEvent.Kind.CANCELLED)
    assert (event.actor, event.message) == ("admin", "wrong file uploaded")
    assert "wrong file uploaded" in run.error_message
    # The run's page shows the reason in its log.
    html = response.content.decode()
    assert "wrong file uploaded" in html


def test_a_reason_is_optional(admin_client, make_project, request_run):
    run = request_run(make_project())
    admin_client.post(cancel_url(run), {"reason": ""})
    run.refresh_from_db()
    assert run.status == ImportRun.Status.CANCELLED
    assert run.events.get(kind=ImportRunEvent.Kind.CANCELLED).message == ""


def test_the_bulk_action_asks_with_one_reason_for_all(
    admin_client, make_project, request_run, failed_run
):
    """The selected active runs are listed, the finished ones named; the
    confirmed reason goes to every cancel event."""
    one, two = request_run(make_project()), request_run(make_project())
    done = failed_run()
    selected = [one.pk, two.pk, done.pk]
    page = admin_client.post(
        reverse(CHANGELIST),
        {"action": "cancel_selected", "_selected_action": selected},
    )
    text = page.content.decode()
    assert "These 2 runs will stop" in text
    assert "Already finished, not cancelled:" in text
    for pk in selected:
        assert f'name="_selected_action" value="{pk}"' in text
    assert not ImportRun.objects.filter(
        pk__in=selected, status=ImportRun.Status.CANCELLED
    ).exists()
    admin_client.post(
        reverse(CHANGELIST),
        {
            "action": "cancel_selected",
            "_selected_action": selected,
            "post": "yes",
            "reason": "source maintenance",
        },
    )
    events = ImportRunEvent.objects.filter(
        run__in=[one, two], kind=ImportRunEvent.Kind.CANCELLED
    )
    assert sorted(events.values_list("message", flat=True)) == [
        "source maintenance",
        "source maintenance",
    ]
    done.refresh_from_db()
    assert done.status == ImportRun.Status.FAILED


def test_without_the_permission_the_page_is_refused(
    staff_client, make_project, request_run
):
    client = staff_client("view_importrun", "view_project")
    run = request_run(make_project())
    assert client.get(cancel_url(run)).status_code == 403
