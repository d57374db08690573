"""URLs of the HTTP API, mounted at ``api/``."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from imports.api import views

app_name = "api"

urlpatterns = [
    path("imports", views.BulkImportCreateView.as_view(), name="imports-bulk"),
    path(
        "projects/<int:project_id>/imports",
        views.ProjectImportCreateView.as_view(),
        name="project-imports",
    ),
    path(
        "projects/<int:project_id>/runs",
        views.ProjectRunListView.as_view(),
        name="project-runs",
    ),
    path("runs/<int:pk>", views.RunDetailView.as_view(), name="run-detail"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="api:schema"),
        name="docs",
    ),
]
