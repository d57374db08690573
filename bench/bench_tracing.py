"""Tracing's cost on the load: the same import with tracing off and on.

The first import of the load benchmark's file (BENCH_ROWS rows, records
layout, ``bench_load``'s 3rd measurement) is run BENCH_TRACING_ROUNDS times
(3) in each mode, alternating off and on so that both see the same machine,
each round in a fresh worker. With tracing on the worker (and this process,
where the guard runs) instruments Django, Celery, psycopg, Redis and httpx
and exports every span over OTLP/HTTP, through the batch processor, to a
local receiver that reads each request and drops it. The goal: the median
import with tracing at most 3% slower than without.
"""

import os
import statistics
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.load_common import (
    RECORDS,
    ROWS,
    WORK,
    Worker,
    fresh_project,
    generate,
    importhub_run,
    maintain,
    setup_django,
)

ROUNDS = int(os.environ.get("BENCH_TRACING_ROUNDS", "3"))
GOAL = 1.03


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts every export and keeps nothing."""

    received = 0

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        _Sink.received += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _traced_env(endpoint: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "IMPORTHUB_TRACING": "1"}


def _round(project, *, env: dict[str, str]) -> float:
    """One first import in a fresh worker started with ``env``."""
    from imports import tracing

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        worker = Worker(layout=RECORDS)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if env:
        tracing.tracing_configure(process="command")
    try:
        fresh_project(project.name, generate_path(), layout=RECORDS)
        maintain("imports_record")
        seconds, run = importhub_run(project)
        assert run.rows_inserted == ROWS, run.rows_inserted
    finally:
        worker.stop()
        tracing.tracing_shutdown()
    return seconds


def generate_path():
    return generate(WORK / f"load-{ROWS}.csv", ROWS)


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    setup_django()
    path = generate_path()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
    print(f"\n== tracing overhead: {ROWS:,} rows, {ROUNDS} rounds each ==")
    project = fresh_project("bench-tracing", path, layout=RECORDS)
    off, on = [], []
    try:
        for index in range(ROUNDS):
            off.append(_round(project, env={}))
            on.append(_round(project, env=_traced_env(endpoint)))
            print(
                f"  round {index + 1}: off {off[-1]:6.2f} s   on {on[-1]:6.2f} s",
                flush=True,
            )
    finally:
        sink.shutdown()
    if not _Sink.received:
        print("  the traced workers exported nothing: tracing was not on")
        return 1
    median_off, median_on = statistics.median(off), statistics.median(on)
    print(f"  median off {median_off:6.2f} s, on {median_on:6.2f} s")
    ratio = median_on / median_off
    ok = ratio <= GOAL
    print(f"  exports received by the sink: {_Sink.received}")
    print(f"  traced / untraced              {ratio:.3f}x   (goal <= {GOAL})")
    print(f"  goal: {'tracing overhead <= 3%':<42} {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
