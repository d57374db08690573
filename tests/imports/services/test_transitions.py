"""Each transition of a run leaves only its from-states, and records its event."""

import pytest

from imports.models import ImportRun, ImportRunEvent
from imports.services import transitions
from imports.services.transitions import (
    CANCEL,
    PROMOTE,
    START,
    SUCCEED,
    TRANSITIONS,
    TransitionNotAllowed,
)

pytestmark = pytest.mark.django_db

Status = ImportRun.Status

# The from-states of every transition, written out: a change to the run's
# life shows up here as a deliberate edit.
EXPECTED_SOURCES = {
    "dispatch_fail": {"queued"},
    "wait": {"queued", "waiting", "retrying"},
    "promote": {"waiting"},
    "start": {"queued", "waiting", "retrying"},
    "postpone": {"queued", "waiting", "retrying"},
    "refuse_start": {"queued", "waiting", "retrying"},
    "succeed": {"running"},
    "fail": {"running"},
    "lose_lock": {"running"},
    "retry": {"running"},
    "reap_retry": {"running"},
    "reap_fail": {"running"},
    "cancel": {"queued", "waiting", "running", "retrying"},
    "force_unlock": {"queued", "waiting", "running", "retrying"},
}


def make_run(project, status, **fields):
    return ImportRun.objects.create(
        project=project, status=status, trigger="command", lock_token="t", **fields
    )


def test_every_transition_is_listed():
    assert {t.name for t in TRANSITIONS} == set(EXPECTED_SOURCES)
    assert len({t.name for t in TRANSITIONS}) == len(TRANSITIONS)


@pytest.mark.parametrize("transition", TRANSITIONS, ids=lambda t: t.name)
def test_sources(transition):
    """The statuses each transition may leave."""
    assert set(transition.sources) == EXPECTED_SOURCES[transition.name]


@pytest.mark.parametrize("transition", TRANSITIONS, ids=lambda t: t.name)
@pytest.mark.parametrize("status", [s.value for s in Status])
def test_applies_only_from_its_sources(transition, status, make_project):
    """From a source the run moves and the event is written; from any other
    status nothing changes and no event is written."""
    project = make_project()
    run = make_run(project, status, fencing_token=1)
    moved = transition.apply(run, actor="test")
    run.refresh_from_db()
    events = list(run.events.values_list("kind", flat=True))
    if status in transition.sources:
        assert moved
        assert run.status == transition.target
        assert events == [transition.event]
    else:
        assert not moved
        assert run.status == status
        assert events == []


def test_guards_make_the_update_conditional(make_project):
    """A guard that does not match (another attempt's fence) changes nothing."""
    run = make_run(make_project(), Status.RUNNING, fencing_token=8)
    assert not SUCCEED.apply(run, actor="worker", guards={"fencing_token": 7})
    assert SUCCEED.apply(run, actor="worker", guards={"fencing_token": 8})
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    assert run.finished_at is not None


def test_source_narrows_the_from_states(make_project):
    """A caller that saw one status moves the run only from that one."""
    run = make_run(make_project(), Status.WAITING)
    assert not CANCEL.apply(run, actor="op", source=Status.QUEUED)
    assert CANCEL.apply(run, actor="op", source=Status.WAITING)
    with pytest.raises(TransitionNotAllowed):
        PROMOTE.apply(run, actor="op", source=Status.RUNNING)


def test_undeclared_fields_are_refused(make_project):
    """A transition writes only the fields it declares."""
    run = make_run(make_project(), Status.QUEUED)
    with pytest.raises(TypeError, match="does not write attempt"):
        START.apply(run, actor="worker", attempt=3)
    run.refresh_from_db()
    assert run.status == Status.QUEUED


def test_in_memory_run_follows(make_project):
    run = make_run(make_project(), Status.RUNNING)
    transitions.FAIL.apply(run, actor="w", error_class="X", error_message="boom")
    assert run.status == Status.FAILED
    assert run.error_message == "boom"
    assert run.finished_at is not None
    event = run.events.get()
    assert event.kind == ImportRunEvent.Kind.FAILED
    assert event.actor == "w"
