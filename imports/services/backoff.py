"""How long a run waits before its next attempt."""

import random

from django.conf import settings


def retry_delay(*, attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, capped; Retry-After wins if later."""
    base = settings.IMPORTHUB_RETRY_BASE_SECONDS
    cap = settings.IMPORTHUB_RETRY_MAX_SECONDS
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after:
        delay = max(delay, min(float(retry_after), cap))
    return delay
