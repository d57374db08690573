"""CSV files on disk: the codec chosen from a byte order mark, the open."""

import codecs
import io

import pytest

from connectors.csv_files import csv_file_open, peek, text_encoding
from connectors.exceptions import PermanentSourceError


@pytest.mark.parametrize(
    ("encoding", "head", "expected"),
    [
        ("utf-8", codecs.BOM_UTF8 + b"id", "utf-8-sig"),
        ("UTF8", codecs.BOM_UTF8 + b"id", "utf-8-sig"),
        ("utf-8", codecs.BOM_UTF16_LE + b"i\x00", "utf-16"),
        ("utf-8", codecs.BOM_UTF16_BE + b"\x00i", "utf-16"),
        ("utf-8", b"id,n", "utf-8"),
        ("cp1251", codecs.BOM_UTF8 + b"id", "cp1251"),
        ("utf-16-le", codecs.BOM_UTF16_LE + b"i\x00", "utf-16-le"),
    ],
)
def test_a_byte_order_mark_decides_only_for_utf8(encoding, head, expected):
    """With UTF-8 a mark picks the codec; an explicit other one is kept."""
    assert text_encoding(encoding, head) == expected


def test_peek_leaves_the_bytes_unread():
    """The first bytes are seen without consuming them."""
    stream = io.BufferedReader(io.BytesIO(b"\x1f\x8brest"))
    assert peek(stream, 2) == b"\x1f\x8b"
    assert stream.read() == b"\x1f\x8brest"


def test_open_says_gzip_from_the_suffix(tmp_path, settings):
    """A file under a root opens in binary; ``.gz`` in its name says gzip."""
    settings.IMPORTHUB_CSV_ROOTS = [str(tmp_path)]
    (tmp_path / "a.csv").write_bytes(b"id\n1\n")
    (tmp_path / "b.csv.gz").write_bytes(b"id\n1\n")
    plain, plain_gzip = csv_file_open("a.csv")
    with plain:
        assert (plain.read(), plain_gzip) == (b"id\n1\n", False)
    packed, packed_gzip = csv_file_open(str(tmp_path / "b.csv.gz"))
    with packed:
        assert packed_gzip is True


def test_open_refuses_a_folder_and_a_file_outside(tmp_path, settings):
    """Not a regular file, or outside the roots: refused before reading."""
    root = tmp_path / "root"
    (root / "folder").mkdir(parents=True)
    (tmp_path / "outside.csv").write_text("secret\n")
    settings.IMPORTHUB_CSV_ROOTS = [str(root)]
    with pytest.raises(PermanentSourceError, match="not a regular file"):
        csv_file_open("folder")
    with pytest.raises(PermanentSourceError, match="not inside the folders"):
        csv_file_open(str(tmp_path / "outside.csv"))
