"""Run the sweep once: reap lost workers, start due retries and waiting runs."""

import json

from django.core.management.base import BaseCommand

from imports.services.sweep import runs_sweep


class Command(BaseCommand):
    help = (
        "Fail or retry runs whose worker is lost, free their locks and slots, "
        "dispatch due retries and start waiting runs (beat does this too)."
    )

    def handle(self, *args, **options):
        self.stdout.write(json.dumps(runs_sweep()))
