"""Case-insensitive prefix searches that read only the matching entries of an index.

`Folded("login_id")` is LOWER(login_id) compared byte by byte, on PostgreSQL whatever the
database's collation (COLLATE "C") and on SQLite (COLLATE BINARY). An index on it, and
`starts_with("key", term)` over an annotation of it, make a prefix search a range scan:
`key >= term AND key < term || U+10FFFF`.

Why not LIKE: PostgreSQL uses a btree for LIKE 'x%' only in the "C" collation or with a
*_pattern_ops operator class, and SQLite only with a NOCASE index (its LIKE ignores case);
and a range over a column in a linguistic collation (en-US) is not a prefix test, since that
collation orders "a-b" beside "ab". Bytes order the same on both databases and in Python.

Case folding is LOWER(): ASCII on SQLite, Unicode on PostgreSQL. Login IDs are ASCII; an
email's local part with non-ASCII capitals matches its exact case only on SQLite.
"""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, Func, Q

# The highest code point: every string that starts with `term` sorts below term + TOP.
TOP = "\U0010ffff"


class Folded(Func):
    """LOWER(expression), compared byte by byte (the "C" collation) on every database."""

    function = "LOWER"
    arity = 1
    output_field = CharField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = self.as_sql(compiler, connection, **extra)
        return f'({sql} COLLATE "C")', params

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = self.as_sql(compiler, connection, **extra)
        return f"({sql} COLLATE BINARY)", params


def fold(term: str) -> str:
    """Return a search term as `Folded` stores it."""
    return term.strip().lower()


def starts_with(key: str, term: str) -> Q:
    """Rows whose `key` (an annotation or alias of `Folded`) starts with the folded `term`."""
    folded = fold(term)
    return Q(**{f"{key}__gte": folded, f"{key}__lt": folded + TOP})
