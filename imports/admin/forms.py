"""Forms of the imports admin: a project's settings and the force-unlock reason."""

from django import forms
from django.utils.translation import gettext_lazy as _

from connectors.registry import connector_secret_fields
from connectors.secrets import MASK, mask_config, masked_paths, unmask_config
from imports.models import Project


class ProjectAdminForm(forms.ModelForm):
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["source"] = mask_config(
                self.instance.source,
                secret_fields=connector_secret_fields(self.instance.connector.kind),
            )
        field = self.fields.get("source")
        if field is not None:
            field.help_text = _(
                "%(help)s Secrets show as %(mask)s; leave the placeholder to "
                "keep the stored secret, or type a new value."
            ) % {"help": field.help_text, "mask": MASK}

    def clean_source(self):
        source = self.cleaned_data.get("source")
        stored = self.instance.source if self.instance.pk else {}
        source = unmask_config(source, stored or {})
        placeholders = masked_paths(source)
        if placeholders:
            raise forms.ValidationError(
                _(
                    "%(fields)s: no secret is stored for the placeholder "
                    "%(mask)s; enter the secret itself."
                ),
                code="secret_placeholder",
                params={"fields": ", ".join(placeholders), "mask": MASK},
            )
        return source


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
