"""An SQL query's row estimate, from the planner, for a run's progress."""

import psycopg


def sql_row_estimate(connection: psycopg.Connection, query: str, params) -> int | None:
    """The planner's estimate of the rows ``query`` returns, or None.

    ``EXPLAIN`` plans without running the query; its top node's "Plan
    Rows" comes from the tables' statistics (``pg_class.reltuples``, kept
    by ANALYZE and autovacuum), so it is an estimate, not a count. Run in
    a savepoint: a failure leaves the read transaction usable, and the
    query's own error is reported when it runs.
    """
    try:
        with connection.transaction():
            row = connection.execute(
                f"EXPLAIN (FORMAT JSON) {query}", params
            ).fetchone()
    except psycopg.Error:
        return None
    try:
        rows = row[0][0]["Plan"]["Plan Rows"]
    except (LookupError, TypeError):
        return None
    return int(rows) if rows and rows > 0 else None
