"""URL configuration."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # The admin's language switcher posts to set_language.
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]

admin.site.site_header = "importhub"
admin.site.site_title = "importhub"
