"""What one request costs the lock store and the database, counted.

The guard's cost is part of the rule (ARCHITECTURE.md, "The guard's cost"):
a busy rejection is one Redis round trip and touches no database; an
acceptance is one Redis round trip (lock and slot together), one database
round trip, and the publish; a request for many projects costs the same.
The lock store here is a private Redis: its ``commandstats`` count exactly
this test's commands (those run inside a script included), and every
round trip to it is counted where the client sends it. The broker's publish
goes to another server and is not among them.
"""

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imports.exceptions import ProjectBusy
from imports.services.guard import RunRequest, import_run_request, import_runs_request
from imports.services.run_rows import ID_BATCH, run_ids_give_back, run_ids_reserve
from tests.locking.conftest import PrivateRedis

pytestmark = pytest.mark.django_db(transaction=True)

REJECTED_ROUND_TRIPS = 1
REJECTED_DB_QUERIES = 0
ACCEPTED_ROUND_TRIPS = 1
ACCEPTED_DB_QUERIES = 1
#: Commands, the scripts' own included (EVALSHA, GET, SET, INCR, the lease's
#: ZADD ...): today's counts as ceilings, so that a script does not grow.
REJECTED_REDIS_COMMANDS = 4
ACCEPTED_REDIS_COMMANDS = 11


@pytest.fixture
def lock_store(tmp_path, settings):
    server = PrivateRedis(str(tmp_path))
    server.start()
    shared, settings.REDIS_URL = settings.REDIS_URL, server.url
    yield server
    settings.REDIS_URL = shared  # the prefix's clean-up runs after this
    server.stop()


class Counted:
    """Round trips to one server, counted as the client sends them."""

    def __init__(self, monkeypatch, port: int):
        self.round_trips = 0
        original = redis.connection.AbstractConnection.send_packed_command

        def send(connection_, command, check_health=True):
            if getattr(connection_, "port", None) == port:
                self.round_trips += 1
            return original(connection_, command, check_health)

        monkeypatch.setattr(
            redis.connection.AbstractConnection, "send_packed_command", send
        )


def commands(server) -> int:
    stats = redis.Redis.from_url(server.url).info("commandstats")
    return sum(
        value["calls"] for name, value in stats.items() if name != "cmdstat_info"
    )


def request(project):
    return import_run_request(project=project, requested_by="t", trigger="command")


@pytest.fixture
def counted(lock_store, monkeypatch):
    return Counted(monkeypatch, lock_store.port)


def test_a_rejection_is_one_round_trip_and_no_query(
    lock_store, counted, make_project, published
):
    busy, warm = make_project(), make_project()
    first = request(busy)
    request(warm)  # the client's connection and scripts are in place
    before, trips = commands(lock_store), counted.round_trips
    with CaptureQueriesContext(connection) as queries:
        with pytest.raises(ProjectBusy) as refused:
            request(busy)
    assert counted.round_trips - trips == REJECTED_ROUND_TRIPS
    assert len(queries) == REJECTED_DB_QUERIES, [q["sql"] for q in queries]
    assert commands(lock_store) - before <= REJECTED_REDIS_COMMANDS
    # The same reply named the active run, and counted the refusal.
    assert refused.value.active_run_id == first.pk


def test_refusals_never_read_the_sequence_across_id_batches(
    lock_store, make_project, published
):
    """Run ids are reserved 64 at a time; a refusal gives its id back and
    the request that writes runs refills an empty pool, so however the
    acceptances fall across a batch's end, the refusal after each makes no
    query."""
    request(make_project())  # warm
    queried = []
    for _ in range(ID_BATCH + 6):
        project = make_project()
        request(project)
        with CaptureQueriesContext(connection) as queries:
            with pytest.raises(ProjectBusy):
                request(project)
        queried.extend(q["sql"] for q in queries)
    assert queried == []


def test_an_acceptance_is_one_round_trip_and_one_query(
    lock_store, counted, make_project, published
):
    request(make_project())  # warm: connection, scripts, reserved ids
    # The id pool's refill (one query per 64 accepted runs, when the pool
    # runs dry) is not this count; two ids ready keep it out of the request.
    run_ids_give_back(run_ids_reserve(2))
    project = make_project()
    before, trips = commands(lock_store), counted.round_trips
    with CaptureQueriesContext(connection) as queries:
        run = request(project)
    assert counted.round_trips - trips == ACCEPTED_ROUND_TRIPS
    assert len(queries) == ACCEPTED_DB_QUERIES, [q["sql"] for q in queries]
    assert commands(lock_store) - before <= ACCEPTED_REDIS_COMMANDS
    assert published() == 2
    assert run.events.count() == 1  # written in the same statement


def test_a_bulk_request_costs_what_one_does(
    lock_store, counted, make_project, published
):
    request(make_project())  # warm
    projects = [make_project() for _ in range(20)]
    busy = projects[3]
    request(busy)
    trips = counted.round_trips
    with CaptureQueriesContext(connection) as queries:
        outcomes = import_runs_request(
            requests=[RunRequest(p) for p in projects],
            requested_by="t",
            trigger="command",
        )
    assert counted.round_trips - trips == ACCEPTED_ROUND_TRIPS
    # One statement for the runs and their events, one to reserve ids.
    assert len(queries) <= ACCEPTED_DB_QUERIES + 1, [q["sql"] for q in queries]
    assert [o.project for o in outcomes] == projects
    assert isinstance(outcomes[3].error, ProjectBusy)
    assert all(o.run is not None for i, o in enumerate(outcomes) if i != 3)
    assert published() == 1 + 1 + 19
