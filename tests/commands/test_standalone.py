"""Standalone mode: a command run beside ``make run`` finds the demo's Redis.

The real run script (``scripts/run.sh``) runs the demo with its folder and
ports of the test's own; a ``manage.py`` command started from a clean
environment (no DATABASE_URL, REDIS_URL or broker URL) must use the demo's
Redis, so that its worker runs the import the command asked for, and once
the demo stopped it must say so instead of queueing a run nobody runs.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.locking.conftest import free_port

pytestmark = [
    pytest.mark.skipif(
        shutil.which("redis-server") is None, reason="the demo needs redis-server"
    ),
    pytest.mark.slow,
]


def standalone_env(var_dir, **extra) -> dict:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_", "REDIS_", "CELERY_", "IMPORTHUB_"))
        and name != "DJANGO_SETTINGS_MODULE"
    }
    env.update(
        IMPORTHUB_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
        LANGUAGE_CODE="en",
        **extra,
    )
    return env


def manage(env, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_command_beside_the_demo_uses_its_redis_and_says_when_it_is_gone(
    tmp_path,
):
    redis_port = free_port()
    env = standalone_env(tmp_path, IMPORTHUB_DEMO_REDIS_PORT=str(redis_port))
    log = (tmp_path / "run.log").open("w+b")
    demo = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=ROOT,
        env={**env, "PORT": str(free_port())},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while b"importhub is running" not in (tmp_path / "run.log").read_bytes():
            assert demo.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.5)
        assert (tmp_path / "standalone.env").read_text() == (
            f"REDIS_URL=redis://127.0.0.1:{redis_port}/0\n"
        )
        # The demo's first project (customers.csv), imported by the demo's
        # worker, which listens only on the demo's Redis.
        done = manage(env, "import_projects", "--project", "1", "--wait")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "importhub.W001" not in done.stderr
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(60)
        log.close()
    assert not (tmp_path / "standalone.env").exists()
    # The demo is gone: the command says so, and no run is queued.
    gone = manage(env, "import_projects", "--project", "1")
    assert gone.returncode != 0, gone.stdout + gone.stderr
    assert "importhub.W001" in gone.stderr
    assert "The demo is not running" in gone.stderr
    assert f"redis://127.0.0.1:{redis_port}/0" in gone.stderr
    status = manage(env, "import_status", "--project", "1", "--json")
    assert status.returncode == 0, status.stderr
    runs = json.loads(status.stdout)
    assert [run["status"] for run in runs] == ["succeeded"], runs
