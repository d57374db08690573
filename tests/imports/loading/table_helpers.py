"""What the typed-table tests share: read a project's table back.

The same helpers serve PostgreSQL and SQLite (``test_sqlite.py`` runs the
table tests again there): on SQLite a column's type is its logical type as
the last import committed it, named as PostgreSQL's information schema
names it.
"""

from django.db import connections

from imports.loading import Target

PG_NAMES = {"timestamptz": "timestamp with time zone"}


def table_rows(project, order_by: str = "1") -> list[dict]:
    """The project's table as dicts, system columns left out."""
    target = Target(project)
    with connections[target.alias].cursor() as cursor:
        cursor.execute(
            f"SELECT * FROM {target.qualified(target.table)} ORDER BY {order_by}"
        )
        names = [c.name if hasattr(c, "name") else c[0] for c in cursor.description]
        return [
            {
                k: v
                for k, v in zip(names, row, strict=True)
                if not k.startswith("_importhub_")
            }
            for row in cursor.fetchall()
        ]


def table_types(project) -> dict[str, str]:
    """The table's columns and their types."""
    target = Target(project)
    if target.vendor == "sqlite":
        project.refresh_from_db()
        return {
            c["name"]: PG_NAMES.get(c["type"], c["type"]) for c in project.table_columns
        }
    with connections[target.alias].cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [target.schema, target.table],
        )
        return {
            name: kind
            for name, kind in cursor.fetchall()
            if not name.startswith("_importhub_")
        }


def table_key(project) -> list[str]:
    """The table's primary key columns."""
    target = Target(project)
    with connections[target.alias].cursor() as cursor:
        if target.vendor == "sqlite":
            cursor.execute(f"PRAGMA table_info({target.qualified(target.table)})")
            return [
                row[1]
                for row in sorted(cursor.fetchall(), key=lambda r: r[5])
                if row[5]
            ]
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
            "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary",
            [f"{target.schema}.{target.table}"],
        )
        return [r[0] for r in cursor.fetchall()]
