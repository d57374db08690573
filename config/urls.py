"""URL configuration."""

from django.contrib import admin
from django.urls import include, path

from imports.views import metrics

urlpatterns = [
    # The admin's language switcher posts to set_language.
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("imports.api.urls")),
    path("metrics", metrics, name="metrics"),
]

admin.site.site_header = "importhub"
admin.site.site_title = "importhub"
