"""Column types: inference, widening, checks and casts agree."""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imports import column_types as ct


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "2", ""], "integer"),
        (["1", "3000000000"], "bigint"),
        (["1", "99999999999999999999"], "numeric"),
        (["1", "1.5"], "numeric"),
        (["007", "12"], "text"),
        (["0.5", "-0.25"], "numeric"),
        (["true", "False"], "boolean"),
        (["2024-02-29", "2024-01-01"], "date"),
        (["2024-02-30"], "text"),
        (["2024-01-01", "2024-01-01T10:00:00Z"], "timestamptz"),
        (["2024-01-01 10:00", "x"], "text"),
        ([], "text"),
    ],
)
def test_text_inference(values, expected):
    assert ct.infer_column(values, text_is_untyped=True) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2], "integer"),
        ([1, 2.5], "double precision"),
        ([Decimal("1.5"), 2], "numeric"),
        ([True, None], "boolean"),
        ([{"a": 1}, [1]], "jsonb"),
        (["12", "x"], "text"),
        ([dt.date(2024, 1, 1), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)], "timestamptz"),
    ],
)
def test_value_inference(values, expected):
    assert ct.infer_column(values, text_is_untyped=False) == expected


def test_widening_never_narrows():
    assert ct.widen("bigint", "integer") == "bigint"
    assert ct.widen("numeric", "integer") == "numeric"
    assert ct.widen("date", "timestamptz") == "timestamptz"
    assert ct.widen("boolean", "integer") == "text"
    assert ct.widen("text", "integer") == "text"
    assert ct.widen(None, "date") == "date"


@pytest.mark.parametrize("name", ["int", "FLOAT", "timestamp with time zone", "json"])
def test_declared_aliases(name):
    assert ct.type_normalize(name) in ct.TYPES


@given(st.text(max_size=30))
def test_inferred_text_always_fits_and_casts(text):
    """Whatever a value is inferred as, it fits that type and casts."""
    inferred = ct.text_type(text)
    if inferred is None:
        return
    assert ct.fits(text, inferred)
    assert ct.cast(text, inferred) is not None or inferred == "text"


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_integers_fit_the_type_they_infer(number):
    inferred = ct.text_type(str(number))
    assert ct.fits(str(number), inferred)
    assert ct.cast(str(number), inferred) in (number, float(number))
