"""Settings for the test suite: real PostgreSQL and Redis, never mocks."""

import os
import tempfile
import uuid

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/importhub")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# One queue and one key prefix per test session, so that two suites running
# on one machine never consume each other's messages or see each other's keys.
# A worker process started by a test inherits its session's; a process of a
# parallel run (pytest-xdist) inherits its controller's and takes its own.
_session = uuid.uuid4().hex[:10]
_xdist = os.environ.get("PYTEST_XDIST_WORKER", "")
_session_env = {
    "IMPORTHUB_TASK_QUEUE": f"imports-test-{_session}",
    "IMPORTHUB_REDIS_PREFIX": f"importhub-test-{_session}:",
    "IMPORTHUB_CONTROL_QUEUE": f"importhub-control-test-{_session}",
}
if os.environ.get("IMPORTHUB_TEST_SESSION_OF", _xdist) != _xdist:
    os.environ.update(_session_env)
for _name, _value in _session_env.items():
    os.environ.setdefault(_name, _value)
os.environ["IMPORTHUB_TEST_SESSION_OF"] = _xdist
os.environ.setdefault("IMPORTHUB_LEASE_SECONDS", "6")
os.environ.setdefault("IMPORTHUB_RETRY_BASE_SECONDS", "0.2")
os.environ.setdefault("IMPORTHUB_RETRY_MAX_SECONDS", "2")
os.environ.setdefault("IMPORTHUB_SWEEP_SECONDS", "1")
os.environ.setdefault("IMPORTHUB_CANCEL_GRACE_SECONDS", "2")
os.environ.setdefault("IMPORTHUB_REDISPATCH_SECONDS", "30")
# The suite reads the English messages (the source strings); the tests of the
# Russian admin ask for Russian. The project's default stays ru.
os.environ.setdefault("LANGUAGE_CODE", "en")

from config.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Tests write their CSV files into pytest's tmp_path, under the temp folder.
IMPORTHUB_CSV_ROOTS = [*IMPORTHUB_CSV_ROOTS, tempfile.gettempdir()]  # noqa: F405

# The connector tests' HTTP servers listen on 127.0.0.1; nothing else local
# is allowed (a test sets the default back to show loopback is refused).
IMPORTHUB_HTTP_ALLOWED_HOSTS = [*IMPORTHUB_HTTP_ALLOWED_HOSTS, "127.0.0.1"]  # noqa: F405
