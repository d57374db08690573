"""What one request costs the lock store and the database, counted.

The guard's cost is a goal of its own (issue 14): these tests pin today's
counts as ceilings, so that a later change cannot quietly add a round trip.
The lock store is a private Redis, so its ``commandstats`` count exactly
this test's commands; the broker's publish is not among them.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imports.exceptions import ProjectBusy
from imports.services.guard import import_run_request
from tests.locking.conftest import PrivateRedis

pytestmark = pytest.mark.django_db(transaction=True)

#: Today's counts: a ceiling each; lower them as the guard gets cheaper.
REJECTED_REDIS_COMMANDS = 5
REJECTED_DB_QUERIES = 2
ACCEPTED_REDIS_COMMANDS = 21
ACCEPTED_DB_QUERIES = 6


@pytest.fixture
def lock_store(tmp_path, settings):
    server = PrivateRedis(str(tmp_path))
    server.start()
    shared, settings.REDIS_URL = settings.REDIS_URL, server.url
    yield server
    settings.REDIS_URL = shared  # the prefix's clean-up runs after this
    server.stop()


def commands(server) -> int:
    import redis

    stats = redis.Redis.from_url(server.url).info("commandstats")
    return sum(
        value["calls"] for name, value in stats.items() if name != "cmdstat_info"
    )


def request(project):
    return import_run_request(project=project, requested_by="t", trigger="command")


def test_a_rejection_costs_few_round_trips(lock_store, make_project, published):
    busy, warm = make_project(), make_project()
    request(busy)
    request(warm)  # the client's connection and scripts are in place
    before = commands(lock_store)
    with CaptureQueriesContext(connection) as queries, pytest.raises(ProjectBusy):
        request(busy)
    redis_commands = commands(lock_store) - before
    assert redis_commands <= REJECTED_REDIS_COMMANDS
    assert len(queries) <= REJECTED_DB_QUERIES


def test_an_acceptance_costs_few_round_trips(lock_store, make_project, published):
    request(make_project())  # warm
    project = make_project()
    before = commands(lock_store)
    with CaptureQueriesContext(connection) as queries:
        request(project)
    redis_commands = commands(lock_store) - before
    assert redis_commands <= ACCEPTED_REDIS_COMMANDS
    assert len(queries) <= ACCEPTED_DB_QUERIES
