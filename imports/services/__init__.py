"""Services: the only code that changes runs.

A run's status changes only in ``transitions``; the guard (``guard``) is the
one way a run is requested, ``dispatch`` the one publisher, and a worker's
attempt is ``claim`` → ``execution`` → ``settle``. See README's Layout.
"""
