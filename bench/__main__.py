"""Run every ``bench/bench_*.py`` module, or only those named on the command
line (``python -m bench locking``), each in a process of its own so that
each sets up Django (or not) for itself. Exits 1 if any goal failed."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import bench


def main(argv: list[str]) -> int:
    wanted = {name.removeprefix("bench_") for name in argv}
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(bench.__path__)
        if info.name.startswith("bench_")
    )
    selected = [n for n in names if not wanted or n.removeprefix("bench_") in wanted]
    if wanted and not selected:
        print(f"No benchmark named {', '.join(sorted(wanted))}; have {names}")
        return 2
    failed = []
    for name in selected:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"]).returncode:
            failed.append(name)
    if failed:
        print(f"goals failed in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
