"""CSV downloads that a spreadsheet opens safely."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse

# A cell starting with one of these is a formula to a spreadsheet (CSV injection):
# a rejection reason, or a login ID from an uploaded file, is text a person typed.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A byte order mark first, so that Excel reads the UTF-8 (and the Chinese) right.
BOM = "\ufeff"


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(rows: Iterable[Iterable[object]], *, filename: str) -> StreamingHttpResponse:
    """Stream rows as UTF-8 CSV with a byte order mark, so that Excel reads Chinese right."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield BOM
        for row in rows:
            yield writer.writerow([safe_cell(cell) for cell in row])

    return csv_stream(lines(), filename=filename)


def csv_stream(text: Iterable[str], *, filename: str) -> StreamingHttpResponse:
    """Stream CSV text already written (BOM first), as an attachment.

    Whatever `text` raises propagates to the server, which then ends the connection without
    the chunked transfer's last chunk: the client sees a cut download, never a short file
    that looks complete. Never catch it here.
    """
    response = StreamingHttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
