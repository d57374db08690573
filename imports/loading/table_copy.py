"""COPY of a delimited source into a text stage, in segments that resume.

The bytes stream into the stage on a connection of their own (so progress
and heartbeats go on beside it). A CSV source is copied in segments of
about ``IMPORTHUB_COPY_SEGMENT_BYTES``, each ended at a record boundary and committed by
itself; after each, ``on_checkpoint`` records the rows staged and the byte
offset reached. A retry that resumes from such a checkpoint reads the
source again from its start but skips, unparsed, the bytes already staged:
no row is staged twice and none is lost.

A boundary is a line break outside quotes: with quotes doubled inside
quoted fields (CSV's escaping), a line break ends a record when the quotes
before it in the segment are even. UTF-8 never holds an ASCII byte inside a
multi-byte character, so the search runs on bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
from django.conf import settings
from django.db import connections

from .table_stage import TableStage


def record_boundary(chunk: bytes, quote: bytes, odd: bool) -> int:
    """Where in ``chunk`` the last record ends (after its line break), or -1.

    ``odd``: the segment so far holds an odd number of quotes.
    """
    position = chunk.rfind(b"\n")
    while position >= 0:
        if (chunk.count(quote, 0, position) + odd) % 2 == 0:
            return position + 1
        position = chunk.rfind(b"\n", 0, position)
    return -1


def skip_bytes(chunks: Iterator[bytes], count: int) -> Iterator[bytes]:
    """``chunks`` without their first ``count`` bytes."""
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:] if count else chunk
        count = 0


def copy_connection(stage: TableStage) -> psycopg.Connection:
    """A connection of its own to the stage's database, autocommitting."""
    params = connections[stage.target.alias].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=True)


def copy_into(
    stage: TableStage,
    statement: str,
    chunks: Iterator[bytes],
    *,
    quote: bytes | None,
    offset: int = 0,
    rows: int = 0,
    on_checkpoint: Callable[[int, int], None] | None = None,
) -> int:
    """COPY ``chunks`` into ``stage`` with ``statement``; the rows staged.

    With ``quote`` (a CSV source) and ``on_checkpoint``, in committed
    segments: ``on_checkpoint(rows, offset)`` after each, ``offset`` being
    the bytes of ``chunks`` consumed. ``offset`` and ``rows`` say where a
    resumed copy starts.
    """
    segmented = quote is not None and on_checkpoint is not None
    segment = settings.IMPORTHUB_COPY_SEGMENT_BYTES
    with copy_connection(stage) as connection, connection.cursor() as cursor:
        context = None
        try:
            context = cursor.copy(statement)
            copy = context.__enter__()
            size, odd = 0, False
            for chunk in chunks:
                if segmented and size + len(chunk) >= segment:
                    cut = record_boundary(chunk, quote, odd)
                    if cut >= 0:
                        copy.write(chunk[:cut])
                        done, context = context, None
                        done.__exit__(None, None, None)  # committed
                        rows += max(cursor.rowcount, 0)
                        offset += cut
                        on_checkpoint(rows, offset)
                        chunk, size, odd = chunk[cut:], 0, False
                        context = cursor.copy(statement)
                        copy = context.__enter__()
                copy.write(chunk)
                size += len(chunk)
                offset += len(chunk)
                if segmented and chunk.count(quote) % 2:
                    odd = not odd
            done, context = context, None
            done.__exit__(None, None, None)
        except BaseException as exc:
            if context is not None:
                context.__exit__(type(exc), exc, exc.__traceback__)
            raise
        rows += max(cursor.rowcount, 0)
        if segmented and size:
            on_checkpoint(rows, offset)
    return rows
