"""Views of the HTTP API; each calls one service or reads runs."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from imports.api.permissions import CanStartImports, CanViewRuns
from imports.api.serializers import (
    BulkImportRequestSerializer,
    BulkImportResponseSerializer,
    ErrorSerializer,
    ImportRequestSerializer,
    ImportRunSerializer,
    ProjectBusySerializer,
)
from imports.exceptions import (
    DispatchFailed,
    ImportRequestError,
    LockServiceUnavailable,
    ProjectBusy,
)
from imports.models import ImportRun, Project
from imports.services.guard import RunRequest, import_run_request, import_runs_request


class ProjectImportCreateView(APIView):
    """Start an import of a project."""

    permission_classes = [IsAuthenticated, CanStartImports]

    @extend_schema(
        operation_id="project_import_create",
        request=ImportRequestSerializer,
        responses={
            202: ImportRunSerializer,
            404: OpenApiResponse(ErrorSerializer, description="Unknown project."),
            409: OpenApiResponse(
                ProjectBusySerializer,
                description="The project is already importing; nothing was "
                "started. Other refusals (an inactive project, a connector "
                "that rejects when busy) are 409 with detail and code.",
            ),
            503: OpenApiResponse(
                ErrorSerializer,
                description="The lock service or the broker is unavailable.",
            ),
        },
    )
    def post(self, request, project_id: int):
        project = get_object_or_404(
            Project.objects.select_related("connector"), pk=project_id
        )
        body = ImportRequestSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        try:
            run = import_run_request(
                project=project,
                requested_by=request.user.get_username(),
                trigger=ImportRun.Trigger.API,
                confirm_deletions=body.validated_data["confirm_deletions"],
                full_refresh=body.validated_data["full_refresh"],
                reason=body.validated_data["reason"],
            )
        except ProjectBusy as exc:
            return Response(
                {"detail": str(exc), "active_run": exc.active_run_id},
                status=exc.status_code,
            )
        except ImportRequestError as exc:
            return Response(
                {"detail": str(exc), "code": exc.default_code},
                status=exc.status_code,
            )
        data = ImportRunSerializer(run).data
        return Response(
            data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": data["links"]["self"]},
        )


class BulkImportCreateView(APIView):
    """Start imports of many projects in one request (one guard call)."""

    permission_classes = [IsAuthenticated, CanStartImports]

    @extend_schema(
        operation_id="imports_bulk_create",
        request=BulkImportRequestSerializer,
        responses={
            200: OpenApiResponse(
                BulkImportResponseSerializer,
                description="Each project's own answer, in the order asked.",
            ),
        },
    )
    def post(self, request):
        body = BulkImportRequestSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        ids = list(dict.fromkeys(body.validated_data["projects"]))
        found = Project.objects.select_related("connector").in_bulk(ids)
        outcomes = import_runs_request(
            requests=[RunRequest(found[pid]) for pid in ids if pid in found],
            requested_by=request.user.get_username(),
            trigger=ImportRun.Trigger.API,
            confirm_deletions=body.validated_data["confirm_deletions"],
            full_refresh=body.validated_data["full_refresh"],
            reason=body.validated_data["reason"],
        )
        answers = {outcome.project.pk: _bulk_answer(outcome) for outcome in outcomes}
        results = [
            answers.get(pid)
            or {"project": pid, "status": "not_found", "detail": "No such project."}
            for pid in ids
        ]
        accepted = sum(1 for result in results if result["status"] == "accepted")
        return Response(
            {
                "accepted": accepted,
                "rejected": len(results) - accepted,
                "results": results,
            }
        )


def _bulk_answer(outcome) -> dict:
    exc = outcome.error
    if exc is None:
        return {
            "project": outcome.project.pk,
            "status": "accepted",
            "run": ImportRunSerializer(outcome.run).data,
        }
    answer = {"project": outcome.project.pk, "detail": str(exc)}
    if isinstance(exc, ProjectBusy):
        return {**answer, "status": "busy", "active_run": exc.active_run_id}
    if isinstance(exc, LockServiceUnavailable | DispatchFailed):
        return {**answer, "status": "unavailable", "code": exc.default_code}
    return {**answer, "status": "rejected", "code": exc.default_code}


class RunDetailView(generics.RetrieveAPIView):
    """One run: its status, counts and error."""

    permission_classes = [IsAuthenticated, CanViewRuns]
    serializer_class = ImportRunSerializer
    queryset = ImportRun.objects.all()


class RunCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class ProjectRunListView(generics.ListAPIView):
    """A project's runs, newest first (cursor-paginated)."""

    permission_classes = [IsAuthenticated, CanViewRuns]
    serializer_class = ImportRunSerializer
    pagination_class = RunCursorPagination

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status",
                str,
                enum=ImportRun.Status.values,
                description="Only runs with this status.",
            )
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        project = get_object_or_404(Project, pk=self.kwargs["project_id"])
        runs = ImportRun.objects.filter(project=project)
        wanted = self.request.query_params.get("status")
        if wanted:
            runs = runs.filter(status=wanted)
        return runs
