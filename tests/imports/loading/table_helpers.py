"""What the typed-table tests share: read a project's table back."""

from django.db import connections

from imports.loading import Target


def table_rows(project, order_by: str = "1") -> list[dict]:
    """The project's table as dicts, system columns left out."""
    target = Target(project)
    with connections[target.alias].cursor() as cursor:
        cursor.execute(
            f"SELECT * FROM {target.qualified(target.table)} ORDER BY {order_by}"
        )
        names = [c.name for c in cursor.description]
        return [
            {
                k: v
                for k, v in zip(names, row, strict=True)
                if not k.startswith("_importhub_")
            }
            for row in cursor.fetchall()
        ]


def table_types(project) -> dict[str, str]:
    """The table's columns and their PostgreSQL types."""
    target = Target(project)
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
