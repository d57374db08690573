"""The loading's semantics hold on SQLite too (the standalone mode)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
# Every module of this package but the SQL relay, which needs PostgreSQL.
MODULES = ["test_dialects.py", "test_extract.py", "test_load.py"] + [
    "test_merge.py",
    "test_results.py",
    "test_safety.py",
    "test_stage.py",
    "test_table.py",
]


@pytest.mark.skipif(
    os.environ.get("IMPORTHUB_LOADING_ON_SQLITE") == "1",
    reason="this is the SQLite re-run itself",
)
def test_the_same_semantics_hold_on_sqlite(tmp_path, redis_prefix):
    """Every loading test that needs no PostgreSQL source passes on SQLite."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "IMPORTHUB_LOADING_ON_SQLITE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + [str(HERE / name) for name in MODULES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
