"""Redis locks, semaphores and lease renewal, with no Django imports."""

from .admission import Admission, Admitted, Full, Held, admit
from .client import make_redis_client
from .exceptions import LockingError, LockingUnavailable, LockNotOwned
from .lock import Lock
from .renewal import Renewer
from .semaphore import Semaphore

__all__ = [
    "Admission",
    "Admitted",
    "Full",
    "Held",
    "admit",
    "Lock",
    "LockingError",
    "LockingUnavailable",
    "LockNotOwned",
    "Renewer",
    "Semaphore",
    "make_redis_client",
]
