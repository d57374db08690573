"""Tracing with OpenTelemetry: the ``otel`` extra, switched on by the environment.

This is the only module that imports OpenTelemetry, and only once
``tracing_configure()`` runs; without the extra (or with tracing off) every
helper here is a no-op and nothing of OpenTelemetry is imported.

Tracing is on when ``IMPORTHUB_TRACING`` is true, or when an OTLP endpoint
is set (``OTEL_EXPORTER_OTLP_ENDPOINT``/``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
and ``IMPORTHUB_TRACING`` is not false; ``OTEL_SDK_DISABLED=true`` turns it
off. The rest is OpenTelemetry's own environment: ``OTEL_SERVICE_NAME``
(default ``importhub-<process>``), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_*`` and
``OTEL_TRACES_EXPORTER`` (``otlp``, the default, over HTTP/protobuf, or
``console``).

Each process configures itself: the web process in ``config/wsgi.py`` and
``config/asgi.py``, management commands in ``manage.py``, every worker
process on Celery's ``worker_process_init`` (a prefork child: the batch
processor's thread does not survive a fork, so the parent sets up nothing)
and beat on ``beat_init`` (``config/celery.py``).

Spans carry ids and counts only (``importhub.*`` attributes): never a
connector's configuration, a row, or SQL parameters; an HTTP client span's
URL loses its query string.
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

INSTRUMENTED = ("django", "celery", "psycopg", "redis", "httpx")
_FALSE = {"0", "false", "no", "off"}
_TRUE = {"1", "true", "yes", "on"}

_tracer = None
_provider = None
_instrumentors: list = []
_trace = None  # the opentelemetry.trace module, once configured
_context_api = None
_NULL = contextlib.nullcontext()


def tracing_requested(environ=os.environ) -> bool:
    """Whether the environment asks for tracing."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    switch = environ.get("IMPORTHUB_TRACING", "").strip().lower()
    if switch in _FALSE:
        return False
    if switch in _TRUE:
        return True
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_enabled() -> bool:
    return _tracer is not None


def tracing_configure(
    *,
    process: str,
    exporter=None,
    instrument: tuple[str, ...] = INSTRUMENTED,
    batch: bool = True,
) -> bool:
    """Set up tracing in this process if the environment asks for it (or an
    ``exporter`` is given); return whether tracing is on. Idempotent.

    ``process`` names the process (web, worker, beat, command): the default
    service name is ``importhub-<process>``. ``exporter`` replaces the
    OTLP/console exporter (tests give the SDK's in-memory one); ``batch``
    False exports each span as it ends.
    """
    global _tracer, _provider, _trace, _context_api
    if _tracer is not None:
        return True
    if exporter is None and not tracing_requested():
        return False
    try:
        from opentelemetry import context, trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SimpleSpanProcessor,
        )
    except ImportError:
        logger.warning(
            "tracing is switched on but the otel extra is not installed "
            "(pip install 'importhub[otel]'); tracing stays off"
        )
        return False
    if exporter is None:
        exporter = _exporter_from_env()
    name = os.environ.get("OTEL_SERVICE_NAME") or f"importhub-{process}"
    resource = Resource.create({SERVICE_NAME: name, "importhub.process": process})
    provider = TracerProvider(resource=resource)
    processor = BatchSpanProcessor if batch else SimpleSpanProcessor
    provider.add_span_processor(processor(exporter))
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)
    _instrument(provider, instrument)
    _provider, _trace, _context_api = provider, trace, context
    _tracer = provider.get_tracer("importhub")
    return True


def tracing_shutdown() -> None:
    """Flush and stop this process's tracing; undo the instrumentation."""
    global _tracer, _provider
    for instrumentor in _instrumentors:
        instrumentor.uninstrument()
    _instrumentors.clear()
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def tracing_flush(timeout_millis: int = 5000) -> None:
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def _exporter_from_env():
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")[0].strip()
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind not in ("otlp", ""):
        logger.warning("OTEL_TRACES_EXPORTER=%s is not supported; using otlp", kind)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )

    return OTLPSpanExporter()


def _instrument(provider, names: tuple[str, ...]) -> None:
    """Instrument the libraries named, each with this process's provider."""
    if "django" in names:
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        _instrumentors.append(DjangoInstrumentor())
        _instrumentors[-1].instrument(tracer_provider=provider)
    if "celery" in names:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        _instrumentors.append(CeleryInstrumentor())
        _instrumentors[-1].instrument(tracer_provider=provider)
    if "psycopg" in names:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        # Statements only: parameters (row values, a source's rows) never.
        _instrumentors.append(PsycopgInstrumentor())
        _instrumentors[-1].instrument(
            tracer_provider=provider, capture_parameters=False
        )
    if "redis" in names:
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        _instrumentors.append(RedisInstrumentor())
        _instrumentors[-1].instrument(tracer_provider=provider)
    if "httpx" in names:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        _instrumentors.append(HTTPXClientInstrumentor())
        _instrumentors[-1].instrument(
            tracer_provider=provider, request_hook=_httpx_request_hook
        )


def url_without_query(url: str) -> str:
    """``url`` without its credentials, query and fragment: an HTTP
    connector's key may travel in the query string."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _httpx_request_hook(span, request) -> None:
    if span is None or not span.is_recording():
        return
    url = url_without_query(str(request.url))
    span.set_attribute("url.full", url)
    span.set_attribute("http.url", url)


def _attributes(values: dict[str, Any]) -> dict[str, Any]:
    return {
        f"importhub.{key}": value
        for key, value in values.items()
        if value is not None and isinstance(value, str | bool | int | float)
    }


def span(name: str, **attributes: Any):
    """A span named ``name`` around a block, current inside it; the
    exception that leaves the block is recorded on it. ``attributes`` are
    set as ``importhub.<key>`` (ids and counts only). A no-op (yielding
    None) while tracing is off."""
    if _tracer is None:
        return _NULL
    return _span(name, _attributes(attributes))


@contextlib.contextmanager
def _span(name: str, attributes: dict[str, Any]):
    with _tracer.start_as_current_span(
        name,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            span_error(current, exc)
            raise


def span_set(current, **attributes: Any) -> None:
    """Set ``importhub.<key>`` attributes on ``current`` (None: nothing)."""
    if current is not None:
        current.set_attributes(_attributes(attributes))


def span_error(current, exc: BaseException) -> None:
    """Record ``exc`` on ``current`` and mark it failed (None: nothing).

    Its message (connectors redact their errors' secrets) and its own
    frames only: the exceptions it was raised from (a client library's,
    naming a URL with its key) are left out.
    """
    if current is None or _trace is None or not current.is_recording():
        return
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, chain=False)
    current.add_event(
        "exception",
        {
            "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "exception.message": str(exc),
            "exception.stacktrace": "".join(frames),
        },
    )
    current.set_status(_trace.Status(_trace.StatusCode.ERROR, type(exc).__name__))


def context_current():
    """The current trace context, to carry into a later callback (None
    while tracing is off)."""
    return _context_api.get_current() if _context_api is not None else None


@contextlib.contextmanager
def context_attached(context) -> Iterator[None]:
    """Make ``context`` (from ``context_current``) current inside the block."""
    if context is None or _context_api is None:
        yield
        return
    token = _context_api.attach(context)
    try:
        yield
    finally:
        _context_api.detach(token)


def span_current():
    """The current span while tracing is on, else None."""
    return _trace.get_current_span() if _trace is not None else None
