"""kombu's Redis Sentinel transport, made to survive the loss of its master.

When the master dies under a consuming worker, kombu's channel closes
itself (``Channel.close``): it drops its connection pool, then tries to put
back its unacknowledged messages, which builds a new pool from connection
parameters that are already gone (``self.connection.client`` is None). The
``AttributeError`` this raises is not a connection error, so Celery's
``ignore_errors`` lets it through and the worker stops for good
("Unrecoverable error: AttributeError: 'NoneType' object has no attribute
'hostname'", the same crash as celery/kombu#582).

Here a channel whose connection is gone raises a connection error instead,
which the close ignores, and the consumer reconnects through the sentinels
to the new master. The messages that were not put back stay in the unacked
set until the visibility timeout restores them; a run they belong to is not
lost meanwhile: the sweep sends a queued run again, and reaps a running run
whose worker went away (``imports/services/sweep.py``).
``tests/e2e/test_sentinel_failover.py`` shows the worker through failovers.
"""

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class SentinelChannel(kombu_redis.SentinelChannel):
    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection is already closed")
        return super()._connparams(asynchronous)


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
