"""The contract every connector keeps, run against each one.

Like Django's ``SessionTestsMixin``: a test class sets ``connector_class``
and provides a ``make_source`` fixture; the mixin's tests do the rest.
"""

import pytest

from connectors.base import BadRow, BaseConnector
from connectors.exceptions import ConnectorConfigError
from connectors.registry import (
    connector_choices,
    connector_secret_fields,
    get_connector,
    get_connector_class,
)
from connectors.secrets import MASK, mask_config

ROWS = [{"id": str(n), "name": f"name {n}"} for n in range(1, 6)]


def as_text(record: dict) -> dict:
    return {key: str(value) for key, value in record.items()}


class ConnectorContractTests:
    connector_class: type[BaseConnector] | None = None
    #: Configs that ``validate()`` must refuse, besides non-objects.
    garbage_configs: list = []

    @pytest.fixture
    def make_source(self):
        """A function of rows returning ``(config, source)`` serving them."""
        raise NotImplementedError("subclasses provide make_source")

    def build(self, make_source, rows=ROWS) -> BaseConnector:
        config, source = make_source(rows)
        return self.connector_class(config=config, source=source)

    def test_kind_is_set_and_registered(self):
        """The class names its kind, and the registry resolves it."""
        kind = self.connector_class.kind
        assert kind
        assert get_connector_class(kind) is self.connector_class

    def test_kind_is_a_choice_labelled_by_the_class(self):
        """The admin offers the kind under the class's ``verbose_name``."""
        label = dict(connector_choices())[self.connector_class.kind]
        assert label == self.connector_class.verbose_name
        assert str(label) and str(label) != self.connector_class.kind

    def test_secret_fields_are_field_names(self):
        """``secret_fields`` is a tuple of config key names."""
        fields = self.connector_class.secret_fields
        assert isinstance(fields, tuple)
        assert all(isinstance(name, str) and name for name in fields)

    def test_validate_accepts_a_working_source(self, make_source):
        """The config and source that serve records pass validation."""
        config, source = make_source(ROWS)
        self.connector_class.validate(config=config)
        self.connector_class.validate(config=config, source=source)

    def test_validate_rejects_garbage(self, make_source):
        """A config that is not an object, or holds nonsense, is refused."""
        config, source = make_source(ROWS)
        for garbage in [["a", "list"], "text", 42, *self.garbage_configs]:
            if isinstance(garbage, dict):
                garbage = {**config, **garbage}
            with pytest.raises(ConnectorConfigError) as caught:
                self.connector_class.validate(config=garbage, source=source)
            assert caught.value.errors, garbage
            assert all(
                isinstance(m, str) for ms in caught.value.errors.values() for m in ms
            )

    def test_records_are_dicts(self, make_source):
        """Each record is a dict keyed by column name."""
        with self.build(make_source) as connector:
            records = list(connector.iter_records())
        assert all(type(record) is dict for record in records)
        assert [as_text(record) for record in records] == ROWS

    def test_iter_batches_yields_batches_of_at_most_batch_size(self, make_source):
        """Batches hold ``batch_size`` records, the last the remainder."""
        with self.build(make_source) as connector:
            batches = list(connector.iter_batches(batch_size=2))
        assert [len(batch) for batch in batches] == [2, 2, 1]
        assert [as_text(r) for batch in batches for r in batch] == ROWS

    def test_iter_batches_refuses_a_batch_size_below_one(self, make_source):
        """A batch size of zero is a programming error."""
        with self.build(make_source) as connector:
            with pytest.raises(ValueError):
                next(connector.iter_batches(batch_size=0))

    def test_an_empty_source_yields_nothing(self, make_source):
        """A source without records gives no batch at all."""
        with self.build(make_source, rows=[]) as connector:
            assert list(connector.iter_batches(batch_size=10)) == []

    def test_open_and_close_are_idempotent(self, make_source):
        """Closing twice, or closing what was never opened, is harmless."""
        connector = self.build(make_source)
        connector.close()
        connector.open()
        connector.close()
        connector.close()
        with connector:
            assert list(connector.iter_records())
        connector.close()

    def test_bad_rows_are_badrow_tuples(self, make_source):
        """Nothing but dicts and ``BadRow`` comes out of a connector."""
        with self.build(make_source) as connector:
            for item in connector.iter_records():
                assert isinstance(item, dict | BadRow)

    def test_masking_by_kind_hides_every_secret_field(self, make_source):
        """The kind's declared secret fields are masked, and redacted."""
        config, _ = make_source(ROWS)
        secret = "contract-secret-value"
        fields = self.connector_class.secret_fields
        config = {**config, **dict.fromkeys(fields, secret)}
        assert connector_secret_fields(self.connector_class.kind) == fields
        masked = mask_config(config, secret_fields=fields)
        assert secret not in repr(masked)
        for name in fields:
            assert masked[name] == MASK
        connector = self.connector_class(config=config, source={})
        assert secret not in connector.redact(f"failed with {secret}")

    @pytest.mark.django_db
    def test_get_connector_builds_it_for_a_project(
        self, make_source, make_connector, make_project
    ):
        """``get_connector(project)`` reads the project's source."""
        config, source = make_source(ROWS)
        connector = make_connector(kind=self.connector_class.kind, config=config)
        project = make_project(connector=connector, source=source)
        built = get_connector(project)
        assert type(built) is self.connector_class
        with built:
            assert [as_text(r) for r in built.iter_records()] == ROWS
