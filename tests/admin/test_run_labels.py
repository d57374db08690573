"""The retrying status and an operator's retry read apart; an operator's
retry counts its try across the chain of runs, as Airflow counts tries."""

import pytest
from django.urls import reverse
from django.utils import translation

from imports.models import ImportRun
from imports.services.chains import run_chain_tries

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def chain(make_project):
    """A failed after 2 attempts; B, an operator's retry of A, failed after
    1; C retries B and runs its first attempt."""
    project = make_project(name="chained")

    def run(**fields):
        fields.setdefault("status", ImportRun.Status.FAILED)
        return ImportRun.objects.create(project=project, **fields)

    a = run(trigger=ImportRun.Trigger.SCHEDULE, attempt=2)
    b = run(trigger=ImportRun.Trigger.RETRY, attempt=1, retry_of=a)
    c = run(
        trigger=ImportRun.Trigger.RETRY,
        attempt=1,
        retry_of=b,
        status=ImportRun.Status.RUNNING,
    )
    return a, b, c


def test_tries_add_up_along_the_chain(chain, django_assert_max_num_queries):
    a, b, c = chain
    assert run_chain_tries([a, b, c]) == {a.pk: 2, b.pk: 3, c.pk: 4}
    # Ancestors outside the given runs are read a generation per query.
    fresh = ImportRun.objects.get(pk=c.pk)
    with django_assert_max_num_queries(2):
        assert run_chain_tries([fresh]) == {c.pk: 4}


def test_the_list_and_the_page_show_the_try(admin_client, chain):
    a, b, c = chain
    html = admin_client.get(reverse("admin:imports_importrun_changelist")).content
    html = html.decode()
    assert '<span class="run-try">try 4</span>' in html
    assert '<span class="run-try">try 3</span>' in html
    assert "try 2" not in html  # A's own attempts need no chain
    page = admin_client.get(
        reverse("admin:imports_importrun_change", args=[c.pk])
    ).content.decode()
    assert "4 (attempt 1 of this run, after 3 in the runs it retries)" in page


def test_in_russian_the_status_and_the_trigger_differ(admin_client, settings, chain):
    settings.LANGUAGE_CODE = "ru"
    with translation.override("ru"):
        status = str(ImportRun.Status.RETRYING.label)
        trigger = str(ImportRun.Trigger.RETRY.label)
    assert status == "Ожидает повтора"
    assert trigger == "Перезапуск оператором"
    html = admin_client.get(reverse("admin:imports_importrun_changelist")).content
    assert 'Перезапуск оператором <span class="run-try">попытка 4</span>' in (
        html.decode()
    )
