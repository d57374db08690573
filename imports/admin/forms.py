"""Forms of the imports admin: a project's and a destination's settings, and
the force-unlock reason."""

from urllib.parse import urlsplit

from django import forms
from django.utils.translation import gettext_lazy as _

from connectors.forms import MaskedSecretsMixin
from connectors.secrets import MASK, mask_url, unmask_config, url_password
from imports.models import Destination, Project

#: The project's settings: what is imported and how.
MAIN_FIELDS = [
    "name",
    "connector",
    "source",
    "key_fields",
    "mode",
    "replace_delete_limit",
    "on_bad_row",
    "is_active",
    "max_retries",
    "auto_pause_after",
]
#: Where and in what shape the data lands.
TABLE_FIELDS = [
    "layout",
    "destination",
    "table_name",
    "schema_policy",
    "column_types",
    "null_markers",
]


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
        fields = [*MAIN_FIELDS, *TABLE_FIELDS]
        widgets = {
            "column_types": forms.Textarea(attrs={"rows": 3, "cols": 60}),
            "null_markers": forms.Textarea(attrs={"rows": 1, "cols": 60}),
        }

    masked_field = "source"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_secrets()
        pause = self.fields.get("auto_pause_after")
        if pause is not None:
            pause.required = False  # empty: off, as by default

    def masked_kind(self) -> str | None:
        return self.instance.connector.kind if self.instance.connector_id else None

    def clean_auto_pause_after(self):
        return self.cleaned_data.get("auto_pause_after") or 0

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


class DestinationAdminForm(forms.ModelForm):
    """A destination's URL with its password masked, never shown back.

    The password shows as the ``••••••`` placeholder, as connector secrets
    do; the placeholder sent back unchanged keeps the stored password. It
    keeps it only for the same host, port and user: whoever edits a
    destination cannot send its password to a server of their choosing
    without knowing it.
    """

    class Meta:
        model = Destination
        fields = ["name", "url", "schema"]
        widgets = {"url": forms.TextInput(attrs={"size": 80, "autocomplete": "off"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["url"] = mask_url(self.instance.url)
        field = self.fields.get("url")
        if field is not None:
            field.help_text = _(
                "%(help)s The password shows as %(mask)s; leave the "
                "placeholder to keep the stored password, or type a new one."
            ) % {"help": field.help_text, "mask": MASK}

    def clean_url(self):
        url = (self.cleaned_data.get("url") or "").strip()
        if url_password(url) != MASK:
            return url
        stored = self.instance.url if self.instance.pk else ""
        if not url_password(stored):
            raise forms.ValidationError(
                _("No password is stored for the placeholder %(mask)s; enter it."),
                code="secret_placeholder",
                params={"mask": MASK},
            )
        if _endpoint(url) != _endpoint(stored):
            raise forms.ValidationError(
                _(
                    "The host, port or user changed: enter the password again "
                    "instead of the placeholder %(mask)s."
                ),
                code="secret_moved",
                params={"mask": MASK},
            )
        return unmask_config(url, stored)


def _endpoint(url: str) -> tuple | None:
    """Where a URL's password goes: host, port and user."""
    try:
        parts = urlsplit(url)
        return (parts.hostname, parts.port, parts.username)
    except ValueError:
        return None
