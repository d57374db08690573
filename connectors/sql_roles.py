"""Roles too powerful for a read-only SQL source, and how to spot them."""

import psycopg

#: Roles whose members can read or write the server's files, run programs
#: on it or signal other sessions: no read-only import needs them.
PRIVILEGED_ROLES = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
)


def role_privileges(connection: psycopg.Connection) -> tuple[str, list[str]]:
    """The session's role and what makes it privileged (empty: nothing).

    A superuser is "superuser" (it is a member of every role anyway);
    otherwise "member of <role>" for each of ``PRIVILEGED_ROLES``.
    """
    row = connection.execute(
        "SELECT current_user::text, r.rolsuper, ARRAY(SELECT m FROM "
        "unnest(%s::text[]) m WHERE pg_has_role(current_user, m, 'MEMBER')) "
        "FROM pg_roles r WHERE r.rolname = current_user",
        [list(PRIVILEGED_ROLES)],
    ).fetchone()
    role, superuser, memberships = row
    if superuser:
        return role, ["superuser"]
    return role, [f"member of {name}" for name in memberships]


def privileged_role_message(role: str, privileges: list[str]) -> str:
    """Why a privileged role is refused, and the two ways past it."""
    return (
        f"The SQL source role {role!r} is {' and '.join(privileges)}: a READ "
        f"ONLY transaction does not stop such a role from reading or writing "
        f"the server's files or running programs. Give the connector a role "
        f"with only CONNECT, USAGE and SELECT grants, or set "
        f'"allow_privileged_role": true in its config to accept the risk.'
    )
