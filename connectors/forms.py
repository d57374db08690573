"""The connector admin form: validated config, secrets never shown."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .models import Connector
from .registry import connector_choices, connector_secret_fields
from .secrets import MASK, mask_config, masked_paths, unmask_config
from .validation import connector_config_validate, connector_live_validate


class MaskedSecretsMixin:
    """A model form's JSON field whose secrets show as ``MASK``.

    ``masked_field`` names the field; ``masked_kind()`` says which
    connector kind's secret fields apply. ``mask_secrets()`` (from
    ``__init__``) shows the stored value masked; ``unmask_secrets(value)``
    (from ``clean_<field>``) puts back each placeholder that came back
    unchanged, and refuses a placeholder with nothing stored behind it.
    """

    masked_field = ""

    def masked_kind(self) -> str | None:
        raise NotImplementedError("subclasses must provide masked_kind()")

    def mask_secrets(self) -> None:
        name = self.masked_field
        if self.instance.pk:
            self.initial[name] = mask_config(
                getattr(self.instance, name),
                secret_fields=connector_secret_fields(self.masked_kind()),
            )
        field = self.fields.get(name)
        if field is not None:
            field.help_text = _(
                "%(help)s Secrets show as %(mask)s; leave the placeholder to "
                "keep the stored secret, or type a new value."
            ) % {"help": field.help_text, "mask": MASK}

    def unmask_secrets(self, value):
        stored = getattr(self.instance, self.masked_field) if self.instance.pk else {}
        value = unmask_config(value, stored or {})
        placeholders = masked_paths(value)
        if placeholders:
            raise ValidationError(
                _(
                    "%(fields)s: no secret is stored for the placeholder "
                    "%(mask)s; enter the secret itself."
                ),
                code="secret_placeholder",
                params={"fields": ", ".join(placeholders), "mask": MASK},
            )
        return value


class ConnectorAdminForm(MaskedSecretsMixin, forms.ModelForm):
    """Shows the config with its secrets masked and validates it by kind.

    The kind is a choice among the kinds the registry knows when the form is
    built, so a plug-in's kind appears without a migration. A connector
    whose kind is no longer installed keeps it in the list (marked), so its
    page still shows what is stored; saving it is refused with the reason.

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
        if "kind" in self.fields:
            self.fields["kind"] = self.kind_field(self.fields["kind"])
        self.mask_secrets()

    masked_field = "config"

    def masked_kind(self) -> str | None:
        return self.instance.kind

    def kind_field(self, model_field: forms.Field) -> forms.ChoiceField:
        """A choice of the registered kinds, labelled by their classes."""
        choices = connector_choices()
        stored = self.instance.kind
        if stored and stored not in dict(choices):
            choices.append((stored, _("%(kind)s (not installed)") % {"kind": stored}))
        return forms.ChoiceField(
            choices=[("", "---------"), *choices],
            label=model_field.label,
            help_text=model_field.help_text,
            required=model_field.required,
            initial=model_field.initial,
        )

    def clean_config(self):
        config = self.cleaned_data.get("config")
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise ValidationError(
                _("The configuration must be a JSON object."), code="invalid"
            )
        return self.unmask_secrets(config)

    def clean(self):
        cleaned_data = super().clean()
        # The kind and the config are validated by the model's clean(), the
        # same check full_clean() makes anywhere. A value this form already
        # refused must not be checked there in its stale stored form.
        # (The same once the live check below refused the config.)
        if self.has_error("kind"):
            self.instance.kind = ""
        if self.has_error("config"):
            self.instance.config = None
        kind, config = cleaned_data.get("kind"), cleaned_data.get("config")
        if kind and config is not None:
            try:
                connector_config_validate(kind=kind, config=config)
            except ValidationError:
                return cleaned_data  # reported by the model's clean()
            try:
                connector_live_validate(kind=kind, config=config)
            except ValidationError as exc:
                self.add_error(None, exc)
                self.instance.config = None
        return cleaned_data
