"""The Celery application."""

import os

from celery import Celery
from celery.signals import beat_init, setup_logging, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("importhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


if os.environ.get("LOG_FORMAT") == "json":

    @setup_logging.connect
    def _django_logging(**kwargs):
        """Workers and beat log with Django's LOGGING (JSON lines), not
        Celery's own format."""
        import logging.config

        from django.conf import settings

        logging.config.dictConfig(settings.LOGGING)


@worker_process_init.connect
def _tracing_worker(**kwargs):
    """Each process that runs tasks sets up its own tracing (a prefork
    child after the fork, or the solo pool's process): the span processor's
    thread would not survive a fork, so the parent sets up none."""
    from imports.tracing import tracing_configure

    tracing_configure(process="worker")


@beat_init.connect
def _tracing_beat(**kwargs):
    """Beat's ticks run the guard in beat's process: their spans start here."""
    from imports.tracing import tracing_configure

    tracing_configure(process="beat")
