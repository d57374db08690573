"""URL configuration."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from imports.views import metrics

urlpatterns = [
    # The site is its admin: "/" (the admin's "View site") opens it.
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    # The admin's language switcher posts to set_language.
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("imports.api.urls")),
    path("metrics", metrics, name="metrics"),
]

# The view-only user's 403 is an admin page like the others.
handler403 = "imports.views.permission_denied"

admin.site.site_header = "importhub"
admin.site.site_title = "importhub"
