"""Admin forms of imports."""

from django import forms

from imports.models import Project
from imports.validation import project_settings_validate


class ProjectAdminForm(forms.ModelForm):
    """Refuses a source, key fields or mode that would fail on a worker."""

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
        ]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            project_settings_validate(
                connector=cleaned.get("connector"),
                source=cleaned.get("source"),
                key_fields=cleaned.get("key_fields"),
                mode=cleaned.get("mode"),
            )
        except forms.ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    self.add_error(field if field in self.fields else None, message)
        return cleaned
