"""App configuration for imports."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = _("Imports")

    def ready(self) -> None:
        # Signal receivers are registered here, not by importing a module
        # for its side effects.
        from django.core import checks

        from imports import run_log
        from imports.checks import standalone_redis_check
        from imports.logging import connect_signals

        connect_signals()
        run_log.connect_signals()
        checks.register(standalone_redis_check)
