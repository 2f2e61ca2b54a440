"""Keyset pagination: pages that cost the same at any depth and at any size of the list.

A page is the `size` rows that follow (or precede) the last row seen, in a fixed order over
unique keys: `WHERE (k1, k2) < (v1, v2) ORDER BY k1 DESC, k2 DESC LIMIT size + 1`. With an
index on the filter's columns followed by the keys, the database reads `size + 1` index
entries whatever the page's depth: no OFFSET, and no COUNT(*) over the whole list.

The condition is written `k1 <= v1 AND (k1 < v1 OR (k1 = v1 AND k2 < v2))`: the first term is
a range that both PostgreSQL and SQLite start an index scan from, and the rest only sorts out
the rows that share k1 with the cursor (row-value comparisons are not in the ORM).

A list that is the union of several index ranges (an audit trail's rows where a user is the
subject OR the actor) is read with `branches`: each branch reads its own first `size + 1` rows
beyond the cursor, through its own index, and the page is the first `size + 1` of those. An
`OR` over the whole list instead would make the database walk one index and filter it, as
far as the page's depth.

The cursor is the keys of the page's edge row, in the URL as `?after=` (the next, older
rows) or `?before=` (the previous, newer ones). A cursor that does not decode is treated as
no cursor: the first page, never an error page for a link that was cut or edited.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model, Q, QuerySet

T = TypeVar("T", bound=Model)

AFTER = "after"
BEFORE = "before"
# A page of more rows than this is never asked of the database, whatever the caller says.
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class Order:
    """The keys a list is read in, first to last; the last must make each row unique."""

    keys: tuple[str, ...]
    descending: bool = False

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("an order needs at least one key")

    def order_by(self, *, reverse: bool = False) -> list[str]:
        down = self.descending != reverse
        return [f"-{key}" if down else key for key in self.keys]


class _Encoder(DjangoJSONEncoder):
    def default(self, o: Any) -> Any:
        # Django's encoder keeps milliseconds; a key must keep every microsecond.
        if isinstance(o, dt.datetime):
            return o.isoformat()
        return super().default(o)


def _encode(values: Sequence[Any]) -> str:
    raw = json.dumps(list(values), cls=_Encoder, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, queryset: QuerySet[Any], order: Order) -> list[Any] | None:
    """The key values a cursor holds, typed as the model's fields, or None if it is not one."""
    if not cursor or len(cursor) > 512:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(values, list) or len(values) != len(order.keys):
        return None
    typed = []
    for key, value in zip(order.keys, values, strict=True):
        if value is None or isinstance(value, (dict, list)):
            return None
        try:
            field = queryset.model._meta.get_field("id" if key == "pk" else key)
        except FieldDoesNotExist:
            # An annotation: compared as the JSON value it was written as.
            typed.append(value)
            continue
        try:
            python = field.to_python(value)  # type: ignore[union-attr]
        except (ValidationError, TypeError, ValueError):
            return None
        if isinstance(python, dt.datetime) and python.tzinfo is None:
            return None
        typed.append(python)
    return typed


def _beyond(keys: Sequence[str], values: Sequence[Any], *, down: bool) -> Q:
    """Rows strictly beyond `values` in the order of `keys` (all ascending, or all descending)."""
    key, value = keys[0], values[0]
    strictly = Q(**{f"{key}__{'lt' if down else 'gt'}": value})
    if len(keys) == 1:
        return strictly
    return Q(**{f"{key}__{'lte' if down else 'gte'}": value}) & (
        strictly | Q(**{key: value}) & _beyond(keys[1:], values[1:], down=down)
    )


@dataclass(frozen=True)
class KeysetPage(Generic[T]):
    """One page of a keyset-paginated list, with the cursors of its neighbours."""

    rows: list[T]
    # The cursor of the page after this one (older rows for a newest-first list), if any.
    next_cursor: str | None
    # The cursor of the page before this one, if this is not the first page.
    previous_cursor: str | None
    # Whether this page is the first of the list (no cursor, or nothing before it).
    is_first: bool
    size: int
    # The list's other parameters (its filters), kept in the links to its other pages.
    base: tuple[tuple[str, str], ...] = ()

    def __iter__(self) -> Any:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def object_list(self) -> list[T]:
        return self.rows

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None

    @property
    def has_other_pages(self) -> bool:
        return self.has_next or self.has_previous

    @property
    def first_query(self) -> str:
        """The query string of the first page, filters kept (for `href="?{{ ... }}"`)."""
        return urlencode(self.base)

    @property
    def next_query(self) -> str:
        return urlencode([*self.base, (AFTER, self.next_cursor or "")])

    @property
    def previous_query(self) -> str:
        return urlencode([*self.base, (BEFORE, self.previous_cursor or "")])


def _read(
    queryset: QuerySet[T],
    beyond: Q | None,
    order_by: list[str],
    limit: int,
    branches: Sequence[Q],
) -> list[T]:
    """The first `limit` rows of `queryset` beyond a cursor, in `order_by`: one query."""
    rows = queryset if beyond is None else queryset.filter(beyond)
    if branches:
        # Each branch's first rows, through its own index; then those few in order. The
        # ids come through one IN (... UNION ALL ...), which the database joins to the few
        # rows it names; an OR of two INs would be a filter over the firm's whole list.
        firsts = [
            queryset.model._default_manager.filter(
                pk__in=rows.filter(branch).order_by(*order_by).values("pk")[:limit]
            )
            .values("pk")
            .order_by()  # SQLite: no ORDER BY in a UNION's parts
            for branch in branches
        ]
        union = firsts[0].union(*firsts[1:], all=True) if len(firsts) > 1 else firsts[0]
        rows = queryset.filter(pk__in=union)
    return list(rows.order_by(*order_by)[:limit])


def keyset_page(
    queryset: QuerySet[T],
    *,
    order: Order,
    params: Mapping[str, str],
    size: int,
    branches: Sequence[Q] = (),
) -> KeysetPage[T]:
    """Read one page of `queryset` in `order`, from the cursor in `params` (a request's GET).

    Two queries at most, each reading `size + 1` rows: the page itself, and only when the
    page came from a `before` cursor and ends the list, the first page read afresh. With
    `branches`, the list is the rows of `queryset` that match any of them (see above).
    """
    size = max(1, min(size, MAX_PAGE_SIZE))
    base = tuple(
        (key, value)
        for key in params
        if key not in (AFTER, BEFORE, "page")
        for value in (params.getlist(key) if hasattr(params, "getlist") else [params[key]])
    )
    after = _decode(params.get(AFTER, ""), queryset, order)
    before = None if after is not None else _decode(params.get(BEFORE, ""), queryset, order)

    if before is not None:
        # The rows just before the cursor: read backwards, then put in the list's order.
        rows = _read(
            queryset,
            _beyond(order.keys, before, down=not order.descending),
            order.order_by(reverse=True),
            size + 1,
            branches,
        )
        more_before = len(rows) > size
        rows = rows[:size][::-1]
        if not more_before:
            # Back at the start of the list: show it as the first page, full.
            return keyset_page(
                queryset,
                order=order,
                params=_without_cursor(params),
                size=size,
                branches=branches,
            )
        return KeysetPage(
            rows=rows,
            next_cursor=_edge(rows[-1], order),
            previous_cursor=_edge(rows[0], order),
            is_first=False,
            size=size,
            base=base,
        )

    beyond = None if after is None else _beyond(order.keys, after, down=order.descending)
    rows = _read(queryset, beyond, order.order_by(), size + 1, branches)
    more = len(rows) > size
    rows = rows[:size]
    return KeysetPage(
        rows=rows,
        next_cursor=_edge(rows[-1], order) if more and rows else None,
        previous_cursor=_edge(rows[0], order) if after is not None and rows else None,
        is_first=after is None,
        size=size,
        base=base,
    )


def _without_cursor(params: Mapping[str, str]) -> Mapping[str, str]:
    if hasattr(params, "copy") and hasattr(params, "getlist"):
        rest = params.copy()
        rest.pop(BEFORE, None)
        rest.pop(AFTER, None)
        return rest  # type: ignore[no-any-return]
    return {key: value for key, value in params.items() if key not in (AFTER, BEFORE)}


def _edge(row: Model, order: Order) -> str:
    return _encode([getattr(row, key) for key in order.keys])


def cursor_for(row: Model, order: Order) -> str:
    """The `after` cursor that starts a page just past `row` (benchmarks and tests)."""
    return _edge(row, order)
