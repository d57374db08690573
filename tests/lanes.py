"""How a parallel run (``make test``: pytest-xdist with ``--dist loadgroup
--no-loadscope-reorder``) shares the tests out among its processes.

- The tests of one broker (``@pytest.mark.brokers``) form one group, so one
  process starts that broker's session worker once; every other test stays
  with the rest of its module (module-scoped fixtures, a module's servers).
- The groups are handed out longest first: the two broker groups, then the
  modules with a ``slow`` test, then the rest in their collection order, so
  that no long module starts last while the other processes sit idle.
"""

import pytest


def _group(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    kind = callspec.params.get("broker") if callspec else None
    return f"broker-{kind}" if kind else item.nodeid.split("::", 1)[0]


def pytest_itemcollected(item):
    # Before any pytest_collection_modifyitems: xdist turns the groups into
    # the tests' ids in one of its own.
    item.add_marker(pytest.mark.xdist_group(_group(item)))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Longest groups first, after every hook that reorders the items (the
    reordering by a session-scoped parameter keeps its groups together)."""
    slow = {_group(item) for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        group = _group(item)
        return 0 if group.startswith("broker-") else 1 if group in slow else 2

    items.sort(key=rank)
