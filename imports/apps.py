"""App configuration for imports."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = _("Imports")

    def ready(self) -> None:
        # Signal receivers are registered here, not by importing a module
        # for its side effects.
        from imports.logging import connect_signals

        connect_signals()
