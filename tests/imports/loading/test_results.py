"""A load's counts are stored by the run's field names; rows are named alike."""

from imports.loading import LoadResult
from imports.loading.results import row_label
from imports.models import ImportRun


def test_the_counts_are_the_runs_fields():
    """Every count names an ImportRun field, duplicates included."""
    result = LoadResult(rows_read=5, rows_rejected=1, duplicates=2)
    counts = result.counts()
    assert counts == {
        "rows_read": 5,
        "rows_inserted": 0,
        "rows_updated": 0,
        "rows_unchanged": 0,
        "rows_deleted": 0,
        "rows_rejected": 1,
        "rows_duplicates": 2,
    }
    assert set(counts) <= {field.name for field in ImportRun._meta.fields}


def test_a_row_is_named_by_its_data_row_and_its_file_line():
    """Files name the line and the data row; other sources the row."""
    assert row_label(2, 3) == "Line 3 of the file (data row 2)"
    assert row_label(7) == "Row 7"
