"""Saving connectors and sources: validated by kind, secrets never shown."""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.urls import reverse

from connectors.base import BaseConnector
from connectors.forms import ConnectorAdminForm
from connectors.models import Connector
from connectors.secrets import MASK
from connectors.validation import connector_source_validate

SECRET = "hunter2-very-secret"
SQL_URL = f"postgresql://reader:{SECRET}@db.example.invalid:5432/warehouse"

pytestmark = pytest.mark.django_db


def form_data(**overrides) -> dict:
    data = {
        "name": "warehouse",
        "kind": "sql",
        "config": json.dumps({"url": SQL_URL, "itersize": 500}),
        "max_concurrent_imports": 2,
        "when_busy": "queue",
        "is_enabled": "on",
    }
    data.update(overrides)
    return data


class TestConnectorAdminForm:
    def test_a_valid_config_is_saved(self):
        """A config its kind accepts is saved as given."""
        form = ConnectorAdminForm(data=form_data())
        assert form.is_valid(), form.errors
        connector = form.save()
        assert connector.config == {"url": SQL_URL, "itersize": 500}

    def test_an_invalid_config_is_a_config_field_error(self):
        """The kind's validation becomes readable errors on ``config``."""
        config = {"url": "mysql://x@h/db", "itersize": 0}
        form = ConnectorAdminForm(data=form_data(config=json.dumps(config)))
        assert not form.is_valid()
        assert form.errors["config"] == [
            "url: Must be a postgresql:// URL.",
            "itersize: Must be a positive whole number.",
        ]

    def test_a_config_that_is_not_an_object_is_refused(self):
        """A JSON list is not a configuration."""
        form = ConnectorAdminForm(data=form_data(config="[1, 2]"))
        assert not form.is_valid()
        assert "must be a JSON object" in form.errors["config"][0]

    def test_http_json_pagination_is_checked(self):
        """A cursor pagination without a cursor path is refused."""
        config = {"url": "https://api.example.invalid/", "pagination": "cursor"}
        form = ConnectorAdminForm(
            data=form_data(kind="http_json", config=json.dumps(config))
        )
        assert not form.is_valid()
        assert form.errors["config"] == ["cursor_path: Required: where the cursor is."]

    def test_the_form_shows_the_config_masked(self, make_connector):
        """An existing connector's secrets are masked in the form."""
        connector = make_connector(
            kind="http_json",
            config={"url": "https://a.example.invalid/", "auth_token": SECRET},
        )
        html = str(ConnectorAdminForm(instance=connector)["config"])
        assert SECRET not in html
        assert MASK in html

    def test_the_placeholder_keeps_the_stored_secret(self, make_connector):
        """Submitting the mask back keeps the secret; other edits apply."""
        connector = make_connector(
            kind="sql", config={"url": SQL_URL, "password": SECRET}
        )
        initial = ConnectorAdminForm(instance=connector).initial["config"]
        assert initial["password"] == MASK
        assert SECRET not in initial["url"]
        edited = {**initial, "itersize": 100}
        form = ConnectorAdminForm(
            instance=connector, data=form_data(config=json.dumps(edited))
        )
        assert form.is_valid(), form.errors
        form.save()
        connector.refresh_from_db()
        assert connector.config == {
            "url": SQL_URL,
            "password": SECRET,
            "itersize": 100,
        }

    def test_a_new_secret_replaces_the_stored_one(self, make_connector):
        """A typed value is a new secret."""
        connector = make_connector(kind="sql", config={"url": SQL_URL})
        new_url = SQL_URL.replace(SECRET, "new-secret")
        form = ConnectorAdminForm(
            instance=connector, data=form_data(config=json.dumps({"url": new_url}))
        )
        assert form.is_valid(), form.errors
        assert form.save().config == {"url": new_url}

    def test_a_placeholder_with_nothing_stored_is_refused(self):
        """A new connector cannot be saved with the mask as its secret."""
        config = {"url": "https://a.example.invalid/", "auth_token": MASK}
        form = ConnectorAdminForm(
            data=form_data(kind="http_json", config=json.dumps(config))
        )
        assert not form.is_valid()
        assert "auth_token: no secret is stored" in form.errors["config"][0]


class TestConnectorAdmin:
    def test_the_change_page_never_renders_a_secret(self, admin_client, make_connector):
        """The admin change page shows the mask, not the password."""
        connector = make_connector(kind="sql", config={"url": SQL_URL})
        url = reverse("admin:connectors_connector_change", args=[connector.pk])
        response = admin_client.get(url)
        assert response.status_code == 200
        assert SECRET not in response.content.decode()
        assert MASK in response.content.decode()

    def test_saving_the_masked_page_keeps_the_secret(
        self, admin_client, make_connector
    ):
        """Posting the form as shown keeps the stored secret."""
        connector = make_connector(
            name="warehouse", kind="sql", config={"url": SQL_URL, "password": SECRET}
        )
        url = reverse("admin:connectors_connector_change", args=[connector.pk])
        masked = admin_client.get(url).context["adminform"].form.initial["config"]
        response = admin_client.post(
            url, form_data(config=json.dumps({**masked, "itersize": 10}))
        )
        assert response.status_code == 302
        connector.refresh_from_db()
        assert connector.config == {"url": SQL_URL, "password": SECRET, "itersize": 10}

    def test_an_invalid_config_shows_a_form_error(self, admin_client):
        """The admin refuses an invalid config with its message."""
        response = admin_client.post(
            reverse("admin:connectors_connector_add"),
            form_data(config=json.dumps({"url": "nope"})),
        )
        assert response.status_code == 200
        assert "url: Must be a postgresql:// URL." in response.content.decode()
        assert not Connector.objects.exists()

    def test_a_view_only_user_sees_the_masked_config(self, client, make_connector):
        """Read-only rendering shows the masked copy, not the model's value."""
        connector = make_connector(kind="sql", config={"url": SQL_URL})
        user = User.objects.create_user("viewer", password="x", is_staff=True)
        user.user_permissions.add(Permission.objects.get(codename="view_connector"))
        client.force_login(user)
        url = reverse("admin:connectors_connector_change", args=[connector.pk])
        response = client.get(url)
        assert response.status_code == 200
        assert SECRET not in response.content.decode()
        assert MASK in response.content.decode()


class TestConnectorSourceValidate:
    def test_a_valid_source_passes(self, make_connector):
        """A source the connector can read raises nothing."""
        connector = make_connector(kind="sql", config={"url": SQL_URL})
        connector_source_validate(connector=connector, source={"query": "SELECT 1"})

    def test_an_invalid_source_is_a_source_error(self, make_connector):
        """Problems become ``{"source": [...]}`` for the project form."""
        connector = make_connector(kind="sql", config={"url": SQL_URL})
        with pytest.raises(ValidationError) as caught:
            connector_source_validate(
                connector=connector, source={"query": "DELETE FROM t"}
            )
        assert caught.value.message_dict == {
            "source": [
                "query: Only a read query (SELECT or WITH) can be imported, not DELETE."
            ]
        }

    def test_a_csv_source_needs_a_file(self, make_connector):
        """A CSV project without a path or url is refused."""
        connector = make_connector(kind="csv", config={})
        with pytest.raises(ValidationError) as caught:
            connector_source_validate(connector=connector, source={})
        assert caught.value.message_dict["source"] == [
            "path: Required: the CSV file's path, or a url."
        ]

    def test_a_source_that_is_not_an_object(self, make_connector):
        """A JSON list is not a source."""
        connector = make_connector(kind="csv", config={})
        with pytest.raises(ValidationError) as caught:
            connector_source_validate(connector=connector, source=["x"])
        assert caught.value.message_dict["source"] == [
            "Must be a JSON object, not list."
        ]


class FakeConnector(BaseConnector):
    """A third-party kind, registered through the setting."""

    kind = "fake_api"
    verbose_name = "Fake API of a plug-in"

    def iter_records(self):
        yield {"id": 1}


@pytest.fixture
def fake_kind(settings):
    settings.IMPORTHUB_CONNECTORS = {"fake_api": f"{__name__}.FakeConnector"}


class TestKindChoices:
    def test_the_kinds_are_the_registry_s(self):
        """The kind field offers the built-in kinds under their labels."""
        choices = dict(ConnectorAdminForm().fields["kind"].choices)
        assert choices["sql"] == "SQL database"
        assert choices["csv"] == "CSV file or URL"
        assert "fake_api" not in choices

    def test_a_plugin_kind_is_chosen_in_the_admin_form(self, fake_kind):
        """A kind from ``IMPORTHUB_CONNECTORS`` can be chosen and saved."""
        choices = dict(ConnectorAdminForm().fields["kind"].choices)
        assert choices["fake_api"] == "Fake API of a plug-in"
        form = ConnectorAdminForm(data=form_data(kind="fake_api", config="{}"))
        assert form.is_valid(), form.errors
        assert form.save().kind == "fake_api"

    def test_a_plugin_kind_is_chosen_on_the_admin_page(self, admin_client, fake_kind):
        """The admin's add page lists the plug-in's kind and saves it."""
        url = reverse("admin:connectors_connector_add")
        assert "Fake API of a plug-in" in admin_client.get(url).content.decode()
        response = admin_client.post(url, form_data(kind="fake_api", config="{}"))
        assert response.status_code == 302
        assert Connector.objects.get(name="warehouse").kind == "fake_api"

    def test_an_unknown_kind_is_refused(self):
        """A kind nobody registered is not a choice."""
        form = ConnectorAdminForm(data=form_data(kind="ftp", config="{}"))
        assert not form.is_valid()
        assert list(form.errors) == ["kind"]
        assert len(form.errors["kind"]) == 1

    def test_a_stored_kind_no_longer_installed_is_shown_and_refused(
        self, make_connector
    ):
        """A connector whose plug-in is gone keeps its kind on the page."""
        connector = make_connector(kind="gone_kind", config={})
        form = ConnectorAdminForm(instance=connector)
        assert dict(form.fields["kind"].choices)["gone_kind"] == (
            "gone_kind (not installed)"
        )
        form = ConnectorAdminForm(
            instance=connector, data=form_data(kind="gone_kind", config="{}")
        )
        assert not form.is_valid()
        assert form.errors["kind"] == ["No connector for kind 'gone_kind'."]


class TestConnectorModelClean:
    def test_full_clean_refuses_an_unknown_kind(self):
        """The model checks its kind against the registry, not field choices."""
        connector = Connector(name="x", kind="ftp")
        with pytest.raises(ValidationError) as caught:
            connector.full_clean()
        assert caught.value.message_dict == {"kind": ["No connector for kind 'ftp'."]}

    def test_full_clean_accepts_a_plugin_kind(self, fake_kind):
        """A kind registered by the setting is a valid kind."""
        Connector(name="x", kind="fake_api").full_clean()


class TestOneValidation:
    """``Connector.full_clean()`` refuses what the admin form refuses."""

    @pytest.mark.parametrize(
        ("kind", "config", "field", "message"),
        [
            ("sql", {"url": "mysql://u@h/db"}, "config", "Must be a postgresql://"),
            (
                "http_json",
                {"url": "https://user:pw@api.example.invalid/"},
                "config",
                "Must not hold credentials",
            ),
            ("csv", ["a", "list"], "config", "Must be a JSON object, not list."),
            ("ftp", {}, "kind", "No connector for kind 'ftp'."),
        ],
    )
    def test_full_clean_and_the_form_agree(self, kind, config, field, message):
        """Both refuse, on the same field, with the same words, once."""
        connector = Connector(name="x", kind=kind, config=config)
        with pytest.raises(ValidationError) as caught:
            connector.full_clean()
        [model_message] = caught.value.message_dict[field]
        assert message in model_message
        form = ConnectorAdminForm(data=form_data(kind=kind, config=json.dumps(config)))
        assert not form.is_valid()
        if field == "kind" or not isinstance(config, dict):
            assert form.errors[field]
        else:
            assert form.errors[field] == [model_message]

    def test_an_unparsable_config_gets_one_error(self, make_connector):
        """A config the form cannot read is not checked again as stored."""
        connector = make_connector(kind="csv", config={})
        form = ConnectorAdminForm(
            instance=connector, data=form_data(kind="sql", config="{not json")
        )
        assert not form.is_valid()
        assert len(form.errors["config"]) == 1

    def test_a_valid_connector_passes_full_clean(self):
        """A config its kind accepts raises nothing."""
        Connector(name="x", kind="sql", config={"url": SQL_URL}).full_clean()


class TestSourceValidation:
    @pytest.mark.parametrize(
        ("kind", "config", "source", "message"),
        [
            ("csv", {}, {}, "path: Required"),
            ("sql", {"url": SQL_URL}, {"query": "DELETE FROM t"}, "not DELETE"),
            ("sql", {"url": SQL_URL}, ["SELECT 1"], "Must be a JSON object"),
            ("http_json", {}, "x", "Must be a JSON object"),
            ("http_json", {}, {}, "url: Required"),
        ],
    )
    def test_connector_source_validate_refuses(
        self, make_connector, kind, config, source, message
    ):
        """Refusals arrive as ``{"source": [...]}`` for the project side."""
        connector = make_connector(kind=kind, config=config)
        with pytest.raises(ValidationError) as caught:
            connector_source_validate(connector=connector, source=source)
        assert message in " ".join(caught.value.message_dict["source"])
        assert SECRET not in str(caught.value)
