"""The browser tests' admin users and their log-in (one place for all)."""

PASSWORD = "correct horse battery staple"


def log_in(page, live_server, username: str):
    """Log ``username`` in on ``page`` and return the page, on the admin's
    index."""
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    return page
