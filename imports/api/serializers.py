"""JSON shapes of the HTTP API."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from imports.models import ImportRun

COUNT_FIELDS = (
    "read",
    "inserted",
    "updated",
    "unchanged",
    "deleted",
    "rejected",
)


class RunCountsSerializer(serializers.Serializer):
    read = serializers.IntegerField(source="rows_read")
    inserted = serializers.IntegerField(source="rows_inserted")
    updated = serializers.IntegerField(source="rows_updated")
    unchanged = serializers.IntegerField(source="rows_unchanged")
    deleted = serializers.IntegerField(source="rows_deleted")
    rejected = serializers.IntegerField(source="rows_rejected")
    duplicates = serializers.IntegerField(source="rows_duplicates")


class RunLinksSerializer(serializers.Serializer):
    self = serializers.CharField()
    project_runs = serializers.CharField()


class ImportRunSerializer(serializers.ModelSerializer):
    counts = RunCountsSerializer(source="*", read_only=True)
    # Rendered in the request's language (Accept-Language).
    error_message = serializers.CharField(source="error_text", read_only=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = ImportRun
        fields = [
            "id",
            "project",
            "status",
            "trigger",
            "requested_by",
            "attempt",
            "retry_of",
            "created_at",
            "started_at",
            "finished_at",
            "counts",
            "deletions_confirmed",
            "error_class",
            "error_message",
            "links",
        ]
        read_only_fields = fields

    @extend_schema_field(RunLinksSerializer)
    def get_links(self, run: ImportRun) -> dict:
        return {
            "self": reverse("api:run-detail", kwargs={"pk": run.pk}),
            "project_runs": reverse(
                "api:project-runs", kwargs={"project_id": run.project_id}
            ),
        }


class ImportRequestSerializer(serializers.Serializer):
    """The optional body of a request to import a project."""

    confirm_deletions = serializers.BooleanField(
        default=False,
        help_text=(
            "Allow this run, in replace mode, to delete more than the "
            "project's deletion limit (or to empty the project)."
        ),
    )
    full_refresh = serializers.BooleanField(
        default=False,
        help_text=(
            "An incremental project reads its whole source again and starts "
            "its cursor anew."
        ),
    )
    reason = serializers.CharField(
        default="",
        allow_blank=True,
        max_length=500,
        help_text="Why, recorded on the run (for a full refresh, say).",
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)


class ProjectBusySerializer(serializers.Serializer):
    detail = serializers.CharField(
        help_text="Проект/источник с id <id> уже обновляется"
    )
    active_run = serializers.IntegerField(
        allow_null=True, help_text="The id of the run that holds the project."
    )


#: The most projects one bulk request may name.
BULK_MAX_PROJECTS = 1000


class BulkImportRequestSerializer(ImportRequestSerializer):
    """A request to import many projects at once, each answered on its own."""

    projects = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        min_length=1,
        max_length=BULK_MAX_PROJECTS,
        help_text=(
            f"Project ids, at most {BULK_MAX_PROJECTS}; a repeated id counts once."
        ),
    )


class BulkImportResultSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=["accepted", "busy", "rejected", "not_found", "unavailable"],
        help_text=(
            "accepted: a run was started (``run``); busy: the project is "
            "already importing (``detail`` is the busy message, ``active_run`` "
            "the run holding it, null while that request is in flight); "
            "rejected: refused for another reason (``code``, ``detail``); "
            "not_found: no such project; unavailable: the lock service or "
            "the broker failed for this project."
        ),
    )
    run = ImportRunSerializer(required=False)
    detail = serializers.CharField(required=False)
    code = serializers.CharField(required=False)
    active_run = serializers.IntegerField(required=False, allow_null=True)


class BulkImportResponseSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = BulkImportResultSerializer(many=True)
