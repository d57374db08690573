"""Admin forms of imports."""

from django import forms

from imports.models import Project


class ProjectAdminForm(forms.ModelForm):
    """Refuses a source, key fields or mode that would fail on a worker.

    The checks are the model's own (``Project.clean``), run by the form's
    ``full_clean`` like every other way a project is saved.
    """

    class Meta:
        model = Project
        fields = [
            "name",
            "connector",
            "source",
            "key_fields",
            "mode",
            "on_bad_row",
            "is_active",
            "max_retries",
            "replace_delete_limit",
        ]
