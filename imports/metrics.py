"""Prometheus metrics, read from PostgreSQL and Redis at scrape time.

Nothing is counted in a process: every figure comes from the database or
Redis when Prometheus scrapes, so any number of web processes, workers and
hosts agree, and a restart loses nothing. Histograms of durations cover the
runs of a recent window (``IMPORTHUB_METRICS_WINDOW_SECONDS``) and are
exposed as gauge histograms: a snapshot, not an ever-growing counter.
"""

import datetime
import logging

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
)
from prometheus_client.registry import Collector

from connectors.models import Connector
from imports.locks import connector_slots, stat_get
from imports.models import RUN_COUNT_KINDS, ImportRun, ProjectEvent
from imports.queues import import_queues, queue_lengths, workers_by_queue

logger = logging.getLogger(__name__)

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600)
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 1800, 3600)
ROW_KINDS = RUN_COUNT_KINDS


def _window_start() -> datetime.datetime:
    seconds = getattr(settings, "IMPORTHUB_METRICS_WINDOW_SECONDS", 3600)
    return timezone.now() - datetime.timedelta(seconds=seconds)


def duration_histogram(queryset, start: str, end: str, buckets) -> tuple[list, float]:
    """Cumulative bucket counts and the sum of ``end - start``, in one query."""
    runs = queryset.annotate(
        span=ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    )
    aggregates = {
        f"le_{i}": Count("pk", filter=Q(span__lte=datetime.timedelta(seconds=b)))
        for i, b in enumerate(buckets)
    }
    row = runs.aggregate(total=Count("pk"), span_sum=Sum("span"), **aggregates)
    counts = [(str(float(b)), row[f"le_{i}"]) for i, b in enumerate(buckets)]
    counts.append(("+Inf", row["total"]))
    total = row["span_sum"].total_seconds() if row["span_sum"] else 0.0
    return counts, total


class ImporthubCollector(Collector):
    def collect(self):
        yield from self.runs()
        yield from self.redis_figures()
        yield from self.broker_figures()

    def runs(self):
        by_status = dict(
            ImportRun.objects.order_by().values_list("status").annotate(n=Count("pk"))
        )
        runs = GaugeMetricFamily(
            "importhub_runs", "Import runs by status.", labels=["status"]
        )
        for status in ImportRun.Status.values:
            runs.add_metric([status], by_status.get(status, 0))
        yield runs
        yield GaugeMetricFamily(
            "importhub_waiting_runs",
            "Runs accepted and waiting for a connector slot.",
            value=by_status.get(ImportRun.Status.WAITING, 0),
        )

        since = _window_start()
        buckets, total = duration_histogram(
            ImportRun.objects.filter(
                finished_at__gte=since, started_at__isnull=False
            ).order_by(),
            "started_at",
            "finished_at",
            DURATION_BUCKETS,
        )
        yield GaugeHistogramMetricFamily(
            "importhub_run_duration_seconds",
            "Durations of the runs that finished in the recent window.",
            buckets=buckets,
            gsum_value=total,
        )
        buckets, total = duration_histogram(
            ImportRun.objects.filter(started_at__gte=since).order_by(),
            "created_at",
            "started_at",
            WAIT_BUCKETS,
        )
        yield GaugeHistogramMetricFamily(
            "importhub_lock_wait_seconds",
            "Time from request to start (queue, lock and slot waits) of the "
            "runs that started in the recent window.",
            buckets=buckets,
            gsum_value=total,
        )

        sums = ImportRun.objects.filter(status=ImportRun.Status.SUCCEEDED).aggregate(
            **{kind: Sum(f"rows_{kind}") for kind in ROW_KINDS}
        )
        rows = CounterMetricFamily(
            "importhub_rows_imported",
            "Rows of succeeded runs, by what happened to them.",
            labels=["kind"],
        )
        for kind in ROW_KINDS:
            rows.add_metric([kind], sums[kind] or 0)
        yield rows

        events = dict(
            ProjectEvent.objects.order_by().values_list("kind").annotate(n=Count("pk"))
        )
        skipped = CounterMetricFamily(
            "importhub_project_events",
            "Project events: scheduled ticks skipped, forced unlocks.",
            labels=["kind"],
        )
        for kind in ProjectEvent.Kind.values:
            skipped.add_metric([kind], events.get(kind, 0))
        yield skipped

    def redis_figures(self):
        up = GaugeMetricFamily(
            "importhub_redis_up", "Whether Redis (locks, slots) answered."
        )
        try:
            rejected = stat_get("rejected_busy")
            in_use = GaugeMetricFamily(
                "importhub_connector_slots_in_use",
                "Import slots of a connector held now.",
                labels=["connector", "name"],
            )
            limit = GaugeMetricFamily(
                "importhub_connector_slots_limit",
                "Import slots a connector allows at once.",
                labels=["connector", "name"],
            )
            for connector in Connector.objects.order_by("pk"):
                labels = [str(connector.pk), connector.name]
                in_use.add_metric(labels, connector_slots(connector).count())
                limit.add_metric(labels, connector.max_concurrent_imports)
        except Exception as exc:
            logger.warning("metrics: Redis unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield CounterMetricFamily(
            "importhub_rejected_busy",
            "Requests refused because the project was already importing.",
            value=rejected,
        )
        yield in_use
        yield limit

    def broker_figures(self):
        """Messages ready per queue and workers consuming each: what an
        autoscaler (KEDA) scales the workers on. Runs waiting for a
        connector slot have no message, so they never inflate the length."""
        up = GaugeMetricFamily(
            "importhub_broker_up", "Whether the Celery broker answered."
        )
        queues = import_queues()
        try:
            lengths = queue_lengths(queues)
        except Exception as exc:
            logger.warning("metrics: broker unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        length = GaugeMetricFamily(
            "importhub_queue_length",
            "Messages waiting in a broker queue (not yet taken by a worker).",
            labels=["queue"],
        )
        for name, count in lengths.items():
            length.add_metric([name], count)
        yield length
        try:
            workers = workers_by_queue(
                queues, timeout=settings.IMPORTHUB_METRICS_WORKERS_TIMEOUT
            )
        except Exception as exc:
            logger.warning("metrics: workers did not answer: %s", exc)
            return
        alive = GaugeMetricFamily(
            "importhub_workers_alive",
            "Celery workers that answered a ping, by queue they consume.",
            labels=["queue"],
        )
        for name, count in workers.items():
            alive.add_metric([name], count)
        yield alive
