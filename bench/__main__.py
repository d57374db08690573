"""Run every ``bench/bench_*.py`` module's ``main()``, or only those named
on the command line (``python -m bench locking``)."""

from __future__ import annotations

import importlib
import pkgutil
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
    failed = 0
    for name in selected:
        print(f"== {name}")
        module = importlib.import_module(f"bench.{name}")
        result = module.main()
        failed += bool(result)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
