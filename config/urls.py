"""URL configuration."""

from django.contrib import admin
from django.urls import include, path

from imports.views import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("imports.api.urls")),
    path("metrics", metrics, name="metrics"),
]
