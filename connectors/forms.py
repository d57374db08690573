"""The connector admin form: validated config, secrets never shown."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .models import Connector
from .secrets import MASK, mask_config, masked_paths, unmask_config
from .validation import connector_config_validate


class ConnectorAdminForm(forms.ModelForm):
    """Shows the config with its secrets masked and validates it by kind.

    A secret whose ``••••••`` placeholder comes back unchanged keeps the
    stored value, so an operator can edit a timeout without retyping a
    password; a new value replaces it.
    """

    class Meta:
        model = Connector
        fields = [
            "name",
            "kind",
            "config",
            "max_concurrent_imports",
            "when_busy",
            "is_enabled",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["config"] = mask_config(
                self.instance.kind, self.instance.config
            )
        field = self.fields.get("config")
        if field is not None:
            field.help_text = _(
                "%(help)s Secrets show as %(mask)s; leave the placeholder to "
                "keep the stored secret, or type a new value."
            ) % {"help": field.help_text, "mask": MASK}

    def clean_config(self):
        config = self.cleaned_data.get("config")
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise ValidationError(
                _("The configuration must be a JSON object."), code="invalid"
            )
        stored = self.instance.config if self.instance.pk else {}
        config = unmask_config(config, stored or {})
        placeholders = masked_paths(config)
        if placeholders:
            raise ValidationError(
                _(
                    "%(fields)s: no secret is stored for the placeholder "
                    "%(mask)s; enter the secret itself."
                ),
                code="secret_placeholder",
                params={"fields": ", ".join(placeholders), "mask": MASK},
            )
        return config

    def clean(self):
        cleaned_data = super().clean()
        kind = cleaned_data.get("kind")
        if kind and "config" in cleaned_data:
            try:
                connector_config_validate(kind=kind, config=cleaned_data["config"])
            except ValidationError as exc:
                self.add_error(None, exc)
        return cleaned_data
