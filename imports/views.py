"""Plain Django views: the Prometheus endpoint and the 403 page."""

import hmac

from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext
from django.views import defaults
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


def permission_denied(request, exception=None):
    """The 403 page: in the admin's layout (header, user tools, language)
    for the admin's pages, Django's plain one elsewhere."""
    if not request.path.startswith(reverse("admin:index")):
        return defaults.permission_denied(request, exception)
    context = {
        **admin.site.each_context(request),
        "title": gettext("Access denied"),
    }
    return render(request, "admin/403.html", context, status=403)
