"""
Background renewal of a lock and/or a semaphore lease.

A TTL frees the resource of a crashed holder, but a live holder whose work
outlasts the TTL would lose it too. A ``Renewer`` thread extends the lock
and the lease every third of the TTL, so two renewals can fail or be late
before anything expires. When an extension fails -- the lock was taken by
somebody else, force-released, or expired while the process was paused --
the renewer sets ``lost`` and calls ``on_lost`` at once, so the owner stops
writing::

      t=0      worker A takes the lock (ttl 30 s), renews at 10 s, 20 s, ...
      t=25     A is SIGSTOPped
      t=50     the lock expires; B takes it with a larger fence
      t=70     A is SIGCONTed; its renewer's extend fails -> on_lost("...")
               A's pipeline checks renewer.lost before it commits, and the
               commit carries A's fence, which B's has overtaken

If Redis cannot be reached for a moment (a restart, a failover, the
``LOADING`` of a restarted server), the lock may well still be held: the
renewer tries again every short interval (``RETRY_INTERVAL`` at most) until
the moment the lock or lease would have expired, counted from the start of
the last successful renewal. Only then is the loss reported, with a reason
saying Redis was unreachable::

      t=0      renewal ok (ttl 30 s, interval 10 s)
      t=10     Redis restarts: ConnectionError -> retry every second
      t=12     Redis answers again: renewal ok, nothing is reported
      ...
      t=40     renewal ok; Redis goes away for good
      t=50..69 retries fail
      t=70     the lease has run out -> on_lost("Redis unreachable ...")

The thread holds only weak references to its targets, like
python-redis-lock's ``_lock_renewer``: dropping the Lock stops renewal.
"""

from __future__ import annotations

import logging
import threading
import time as mod_time
import weakref
from collections.abc import Callable
from typing import Any

from .exceptions import LockingUnavailable
from .lock import Lock
from .semaphore import Semaphore

logger = logging.getLogger(__name__)

#: The longest wait, in seconds, between two tries of a renewal that could
#: not reach Redis (shorter for short TTLs: a tenth of the TTL).
RETRY_INTERVAL = 1.0


class Renewer:
    """
    Keep a lock and/or a lease alive from a daemon thread.

    ``interval`` defaults to a third of the shortest TTL. ``on_lost`` is
    called once, from the renewer thread, with a reason; ``on_renewed``
    after each successful renewal.
    """

    def __init__(
        self,
        *,
        lock: Lock | None = None,
        lease: tuple[Semaphore, str] | None = None,
        interval: float | None = None,
        on_lost: Callable[[str], None] | None = None,
        on_renewed: Callable[[], None] | None = None,
    ) -> None:
        if lock is None and lease is None:
            raise ValueError("Renewer needs a lock, a lease or both")
        ttls = []
        if lock is not None:
            ttls.append(lock.ttl)
        if lease is not None:
            semaphore, token = lease
            if not isinstance(token, str) or not token:
                raise ValueError(f"lease token must be a non-empty string: {token!r}")
            ttls.append(semaphore.ttl)
        self.ttl = min(ttls)
        if interval is None:
            interval = self.ttl / 3
        elif not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval!r}")
        self.interval = float(interval)
        self._lock_ref = weakref.ref(lock) if lock is not None else None
        self._semaphore_ref = weakref.ref(lease[0]) if lease is not None else None
        self._lease_token = lease[1] if lease is not None else None
        self.on_lost = on_lost
        self.on_renewed = on_renewed
        self.lost = threading.Event()
        self.lost_reason: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<Renewer interval={self.interval} lost={self.lost.is_set()}>"

    def start(self) -> Renewer:
        """Start the renewer thread; return self."""
        if self._thread is not None:
            raise RuntimeError("Renewer already started")
        self._thread = threading.Thread(
            target=self._run,
            args=(
                self._lock_ref,
                self._semaphore_ref,
                self._lease_token,
                self.interval,
                self.ttl,
                self._stop,
                mod_time.monotonic(),
            ),
            name="locking-renewer",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop renewing (the lock and lease stay held until released or
        expired) and wait up to ``timeout`` seconds for the thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> Renewer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _run(
        self,
        lock_ref: weakref.ref[Lock] | None,
        semaphore_ref: weakref.ref[Semaphore] | None,
        lease_token: str | None,
        interval: float,
        ttl: float,
        stop: threading.Event,
        started_at: float,
    ) -> None:
        # Only weak references and plain values live in this frame; ``self``
        # is reached through the bound method, so the renewer object itself
        # stays alive while its thread runs, but not the targets.
        # The lease runs from the moment the last successful extension was
        # sent (Redis ran it a little later, so this errs on the safe side);
        # before the first, from start() (the owner took the lock before).
        renewed_at = started_at
        retry_interval = min(interval, ttl / 10, RETRY_INTERVAL)
        failing_since: float | None = None
        wait = interval
        while not stop.wait(wait):
            attempt_at = mod_time.monotonic()
            try:
                reason = self._renew_once(lock_ref, semaphore_ref, lease_token)
            except LockingUnavailable as exc:
                now = mod_time.monotonic()
                left = renewed_at + ttl - now
                if left <= 0:
                    self._report_lost(
                        f"Redis unreachable for {now - renewed_at:.3f}s since "
                        f"the last renewal, past the {ttl}s lease: {exc}"
                    )
                    return
                if failing_since is None:
                    failing_since = now
                    logger.warning(
                        "Renewal failed, retrying for up to %.3fs: %s", left, exc
                    )
                else:
                    logger.debug("Renewal failed again: %s", exc)
                wait = min(retry_interval, left)
                continue
            except Exception as exc:
                # An unexpected error must not end renewal silently: the
                # owner would go on believing it holds the lock.
                logger.exception("Renewal failed")
                self._report_lost(f"renewal failed: {exc!r}")
                return
            if reason == "gone":
                return  # The targets were garbage collected.
            if reason is not None:
                self._report_lost(reason)
                return
            renewed_at = attempt_at
            if failing_since is not None:
                logger.warning(
                    "Renewal succeeded again after %.3fs",
                    renewed_at - failing_since,
                )
                failing_since = None
            wait = interval
            if self.on_renewed is not None:
                try:
                    self.on_renewed()
                except Exception:
                    logger.exception("on_renewed callback failed")

    @staticmethod
    def _renew_once(
        lock_ref: weakref.ref[Lock] | None,
        semaphore_ref: weakref.ref[Semaphore] | None,
        lease_token: str | None,
    ) -> str | None:
        """Extend every target; return None on success, "gone" if the
        targets no longer exist, or the reason the lock/lease was lost."""
        alive = False
        if lock_ref is not None:
            lock = lock_ref()
            if lock is not None:
                alive = True
                if not lock.extend():
                    return f"lock {lock.name!r} lost (fence {lock.fence})"
                del lock
        if semaphore_ref is not None:
            semaphore = semaphore_ref()
            if semaphore is not None:
                alive = True
                if not semaphore.extend(lease_token):
                    return f"lease {lease_token} of semaphore {semaphore.name!r} lost"
                del semaphore
        return None if alive else "gone"

    def _report_lost(self, reason: str) -> None:
        self.lost_reason = reason
        self.lost.set()
        logger.warning("Renewal stopped: %s", reason)
        if self.on_lost is not None:
            try:
                self.on_lost(reason)
            except Exception:
                logger.exception("on_lost callback failed")
