"""A headless Debian Chromium driven by Playwright, against a live server.

Playwright's own browser downloads are never used: the tests launch the
system's ``chromium`` (``scripts/ensure_browser.sh`` installs it; ``make
test`` runs that script). Without Chromium or the Playwright package the
tests skip, loudly, with the reason.
"""

import os
import shutil
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.db import connections

from tests.browser.admin_session import PASSWORD
from tests.conftest import ARTIFACTS

SCREENSHOTS = ARTIFACTS / "screenshots"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SKIP_BANNER = "BROWSER TESTS SKIPPED: "


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("IMPORTHUB_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        "/usr/bin/chromium",
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.browser_failed = report.failed
    return report


@pytest.fixture
def browser(request, tmp_path, monkeypatch, django_db_setup):
    """Open a fresh Chromium profile; ``browser(locale="ru-RU")`` gives a
    context (a persistent one, so that its profile directory is new).

    Playwright's sync API keeps an event loop running in this thread while
    it is started, so Django's guard against ORM calls from async code is
    lifted, and Playwright is stopped, at the end of each test: the tests
    that follow run with no loop.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(
            SKIP_BANNER + "the Playwright package is not installed; "
            "run `.venv/bin/pip install 'playwright>=1.45,<2'` or `make test`."
        )
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            SKIP_BANNER + "Chromium is not installed and could not be installed; "
            "run `apt-get install chromium` (as root) or `make test`, or set "
            "IMPORTHUB_CHROMIUM to a Chromium binary."
        )
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    contexts = []
    with sync_playwright() as playwright:

        def open_context(locale: str = "ru-RU"):
            profile = tmp_path / f"chromium-profile-{uuid.uuid4().hex[:8]}"
            context = playwright.chromium.launch_persistent_context(
                user_data_dir=str(profile),
                executable_path=executable,
                args=CHROMIUM_ARGS,
                headless=True,
                locale=locale,
                viewport={"width": 1400, "height": 1000},
            )
            context.set_default_timeout(15_000)
            contexts.append(context)
            return context

        yield open_context
        for number, context in enumerate(contexts, 1):
            if getattr(request.node, "browser_failed", False):
                # What the browser showed when the test failed.
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                for index, page in enumerate(context.pages, 1):
                    name = f"{request.node.name}-FAILED-{number}-{index}.png"
                    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
            context.close()
        # Connections opened while Playwright's loop ran belong to a context
        # of their own, which the database teardown never sees: close them
        # here, or the test database cannot be dropped at the end.
        connections.close_all()


@pytest.fixture
def screenshot(request):
    """Save a full-page screenshot as artifacts/screenshots/<test>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved = []

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{len(saved) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        saved.append(path)
        return path

    return take


# The admin users of the browser tests: an operator and a view-only user.
@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser(
        username="olga", email="olga@example.com", password=PASSWORD
    )


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user(
        username="victor", password=PASSWORD, is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_importrun", "view_project", "view_connector"]
        )
    )
    return user
