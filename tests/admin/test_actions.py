"""The shared shape of bulk actions: one service per object, one report."""

import pytest
from django.contrib import admin, messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import RequestFactory
from django.utils.translation import ngettext_lazy

from imports.admin.actions import SUMMARY_REASONS, apply_each
from imports.exceptions import ProjectBusy, RunNotRetryable
from imports.models import ImportRun

DONE = ngettext_lazy("%(count)d item was done.", "%(count)d items were done.", "count")
NOT_DONE = ngettext_lazy("%(count)d was not done:", "%(count)d were not done:", "count")


@pytest.fixture
def request_with_messages():
    request = RequestFactory().post("/admin/")
    request._messages = CookieStorage(request)
    return request


@pytest.fixture
def model_admin():
    return admin.site._registry[ImportRun]


def refuse_odd(number: int) -> int:
    """An operation that refuses odd numbers the way a service refuses."""
    if number % 2:
        raise RunNotRetryable(f"{number} is odd")
    return number


def report(model_admin, request, objects, operation=refuse_odd):
    done = apply_each(
        model_admin, request, objects, operation, done=DONE, not_done=NOT_DONE
    )
    return done, [(m.level, m.message) for m in request._messages]


def test_all_succeed_is_success(model_admin, request_with_messages):
    done, shown = report(model_admin, request_with_messages, [2, 4])
    assert done == 2
    assert shown == [(messages.SUCCESS, "2 items were done.")]


def test_some_fail_is_a_warning_naming_why(model_admin, request_with_messages):
    """The others go on after a refusal; the summary names each reason."""
    done, shown = report(model_admin, request_with_messages, [1, 2, 3, 4])
    assert done == 2
    assert shown == [
        (messages.WARNING, "2 items were done. 2 were not done: 1 is odd; 3 is odd")
    ]


def test_all_fail_is_an_error(model_admin, request_with_messages):
    done, shown = report(model_admin, request_with_messages, [1])
    assert done == 0
    assert shown == [(messages.ERROR, "0 items were done. 1 was not done: 1 is odd")]


def test_many_reasons_are_cut_short(model_admin, request_with_messages):
    numbers = [2 * i + 1 for i in range(SUMMARY_REASONS + 3)]
    _, [(level, text)] = report(model_admin, request_with_messages, numbers)
    assert level == messages.ERROR
    assert text.endswith(f"{numbers[SUMMARY_REASONS - 1]} is odd; and 3 more")
    assert f"{numbers[SUMMARY_REASONS]} is odd" not in text


def test_a_lone_busy_refusal_is_shown_exactly(model_admin, request_with_messages):
    """One busy project and nothing else: the busy message alone, as an error."""

    def busy(number):
        raise ProjectBusy(number)

    _, shown = report(model_admin, request_with_messages, [7], operation=busy)
    assert shown == [(messages.ERROR, "Проект/источник с id 7 уже обновляется")]


def test_other_errors_are_not_swallowed(model_admin, request_with_messages):
    """Only refusals (ImportRequestError) are reported; a bug propagates."""

    def broken(number):
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        report(model_admin, request_with_messages, [1], operation=broken)
