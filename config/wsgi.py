"""WSGI entry point."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Before the application loads its middleware: Django's instrumentation
# adds its own (a no-op when tracing is off; see imports.tracing).
from imports.tracing import tracing_configure  # noqa: E402

tracing_configure(process="web")

application = get_wsgi_application()
