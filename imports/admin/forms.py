"""Forms of the imports admin: a project's settings and the force-unlock reason."""

from django import forms
from django.utils.translation import gettext_lazy as _

from connectors.forms import MaskedSecretsMixin
from imports.models import Project


class ProjectAdminForm(MaskedSecretsMixin, forms.ModelForm):
    """Refuses a source, key fields or mode that would fail on a worker.

    The checks are the model's own (``Project.clean``), which the form's
    ``full_clean`` runs like every other way a project is saved.

    A source may hold secrets of its own (a CSV URL's ``auth_token``): they
    show as the ``••••••`` placeholder, as in the connector form, and a
    placeholder sent back unchanged keeps the stored secret.
    """

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

    masked_field = "source"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_secrets()

    def masked_kind(self) -> str | None:
        return self.instance.connector.kind if self.instance.connector_id else None

    def clean_source(self):
        return self.unmask_secrets(self.cleaned_data.get("source"))


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
