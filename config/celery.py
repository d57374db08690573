"""The Celery application."""

import os

from celery import Celery
from celery.signals import setup_logging

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
