"""Plain Django views: the Prometheus endpoint."""

import hmac

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from imports.metrics import ImporthubCollector


@require_GET
def metrics(request):
    """Prometheus exposition; a bearer token when IMPORTHUB_METRICS_TOKEN is
    set."""
    token = settings.IMPORTHUB_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            response = HttpResponse("unauthorized\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ImporthubCollector())
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
