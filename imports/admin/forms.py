"""Forms of the imports admin: a project's settings and the force-unlock reason."""

from django import forms
from django.utils.translation import gettext_lazy as _

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
            "replace_delete_limit",
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


class ForceUnlockForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Why the project is stuck; recorded with your name."),
        max_length=1000,
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("A reason is required."))
        return reason
