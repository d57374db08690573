"""Randomized faults against an incremental paged API: never a lost or doubled row.

The API (a local server) pages its records by ``updated`` and honours the
cursor's ``since``; between trials rows are added and updated. A trial's
fault is a failing page at a random point (the retry goes on from the
checkpoint of the page before), the database cut mid-merge, or none; the
table must equal the API's records after each trial.
"""

import os
import random

import pytest

from imports.models import ImportRun, ImportRunEvent, Project
from tests.connectors.servers import LocalHttpServer, Reply

from .table_helpers import table_rows
from .test_incremental_trials import MergeCut, import_until_done, slow_merges_allow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TRIALS = int(os.environ.get("IMPORTHUB_INCREMENTAL_TRIALS", "200"))
PER_PAGE = 4


class Api:
    """Records ``{id, name, updated}``, newer than ``since``, in pages."""

    def __init__(self):
        self.records: dict[int, dict] = {}
        self.fail_page: int | None = None

    def reply(self, request) -> Reply:
        since = int(request.query.get("since", 0) or 0)
        page = int(request.query.get("page", 1))
        if page == self.fail_page:
            self.fail_page = None
            return Reply({"error": "busy"}, status=503)
        newer = sorted(
            (r for r in self.records.values() if r["updated"] > since),
            key=lambda r: r["updated"],
        )
        chunk = newer[(page - 1) * PER_PAGE : page * PER_PAGE]
        return Reply({"items": chunk})


def test_randomized_faults_on_an_incremental_api(make_connector, make_project):
    seed = int(os.environ.get("IMPORTHUB_TRIALS_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    api = Api()
    server = LocalHttpServer().start()
    server.route("/items", api.reply)
    try:
        connector = make_connector(
            kind="http_json",
            config={"url": server.url("/"), "timeout_read": 5, "page_retries": 0},
        )
        project = make_project(
            connector=connector,
            layout=Project.Layout.TABLE,
            max_retries=5,
            source={
                "path": "/items",
                "pagination": "page",
                "records_path": "items",
                "cursor": {"field": "updated", "param": "since"},
            },
        )
        clock = 1
        api.records[1] = {"id": 1, "name": "first", "updated": 1}
        assert import_until_done(project).status == ImportRun.Status.SUCCEEDED
        slow_merges_allow(project)
        faults = {"none": 0, "page": 0, "merge": 0}
        for trial in range(TRIALS):
            committed = clock
            for _ in range(rnd.randint(0, 9)):
                clock += 1
                key = len(api.records) + 1
                api.records[key] = {"id": key, "name": f"n{trial}", "updated": clock}
            count = min(len(api.records), rnd.randint(0, 3))
            for key in rnd.sample(sorted(api.records), count):
                clock += 1
                api.records[key] = {"id": key, "name": f"u{trial}", "updated": clock}
            changed = sum(r["updated"] > committed for r in api.records.values())
            pages = -(-changed // PER_PAGE) + 1  # and the empty one that ends
            fault = rnd.choice(["none", "page", "merge"])
            failing = rnd.randint(1, pages) if fault == "page" else None
            api.fail_page = failing
            if fault == "merge" and changed:
                with MergeCut(project) as cut:
                    run = import_until_done(project)
                assert cut.done.is_set()
            else:
                fault = "none" if fault == "merge" else fault
                run = import_until_done(project)
            faults[fault] += 1
            assert run.status == ImportRun.Status.SUCCEEDED, (
                seed,
                trial,
                run.error_message,
            )
            if failing is not None:
                assert run.attempt == 2
                # A page after the first fails: the retry goes on from the
                # checkpoint of the page before it.
                resumed = run.events.filter(kind=ImportRunEvent.Kind.RESUMED).exists()
                assert resumed is (failing > 1), (seed, trial, failing)
                assert run.rows_read == changed
            landed = {r["id"]: r for r in table_rows(project)}
            expected = {
                k: {"id": k, "name": v["name"], "updated": v["updated"]}
                for k, v in api.records.items()
            }
            assert landed == expected, f"seed {seed}, trial {trial} ({fault})"
        assert min(faults.values()) > 0, faults
    finally:
        server.stop()
