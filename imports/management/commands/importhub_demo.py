"""Create the demo: an admin user, a CSV connector and projects."""

import csv
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from connectors.models import Connector
from imports.models import Project

DEMO_DIR = Path(settings.BASE_DIR) / "demo"
LARGE_ROWS = 300_000


def large_csv() -> Path:
    """A generated file big enough to see a project busy while it imports."""
    path = Path(settings.BASE_DIR) / "var" / "demo" / "large.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "city", "amount"])
            cities = ["Москва", "Казань", "Самара", "Berlin"]
            writer.writerows(
                (i, cities[i % len(cities)], i % 997) for i in range(LARGE_ROWS)
            )
    return path


class Command(BaseCommand):
    help = "Create (or refresh) the demo admin user, connector and projects."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="admin")

    @transaction.atomic
    def handle(self, *args, username, password, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"is_staff": True, "is_superuser": True, "email": ""},
        )
        if created:
            user.set_password(password)
            user.save()
        connector, _ = Connector.objects.update_or_create(
            name="Демо: CSV-файлы",
            defaults={
                "kind": "csv",
                "config": {"encoding": "utf-8"},
                "max_concurrent_imports": 2,
            },
        )
        projects = [
            (
                "Клиенты",
                {"path": str(DEMO_DIR / "customers.csv")},
                ["id"],
                Project.Mode.UPSERT,
            ),
            (
                "Заказы (полная замена)",
                {"path": str(DEMO_DIR / "orders.csv"), "delimiter": ";"},
                ["order_id", "line"],
                Project.Mode.REPLACE,
            ),
            (
                "Большой файл (300 000 строк)",
                {"path": str(large_csv())},
                ["id"],
                Project.Mode.UPSERT,
            ),
            (
                "Сломанный источник",
                {"path": str(DEMO_DIR / "missing.csv")},
                ["id"],
                Project.Mode.UPSERT,
            ),
        ]
        for name, source, key_fields, mode in projects:
            Project.objects.update_or_create(
                name=name,
                defaults={
                    "connector": connector,
                    "source": source,
                    "key_fields": key_fields,
                    "mode": mode,
                },
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: {len(projects)} projects on connector “{connector}”.\n"
                f"Admin login: {username} / "
                f"{password if created else '(unchanged: the user existed)'}"
            )
        )
