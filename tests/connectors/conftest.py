"""Fixtures of the connector tests: local HTTP servers and SQL sources."""

import uuid

import pytest

from .servers import LocalHttpServer


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1, stopped after the test."""
    server = LocalHttpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sql_source_url():
    """A PostgreSQL database of the module's own, dropped afterwards."""
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    user = db["USER"] or "postgres"
    name = f"importhub_conn_src_{uuid.uuid4().hex[:10]}"
    admin_url = f"postgresql://{user}@{host}:{port}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sql_execute(sql_source_url):
    """Run statements on the source database, outside any connector."""
    import psycopg

    connection = psycopg.connect(sql_source_url, autocommit=True)

    def execute(statement, params=None):
        cursor = connection.execute(statement, params)
        return cursor.fetchall() if cursor.description else None

    yield execute
    connection.close()
