"""Set-based writes the ORM has no verb for."""

from __future__ import annotations

from typing import Any

from django.db import connections, models
from django.db.models import QuerySet


def insert_from_select(
    model: type[models.Model], *, source: QuerySet[Any], columns: dict[str, Any]
) -> int:
    """Insert one row of `model` for each row of `source`, in one INSERT ... SELECT.

    `columns` maps each column of `model`'s table to an expression over `source` (an F()
    of one of its fields, a Value(), a database function). The SELECT is compiled by the
    ORM, so the values are parameters and the statement works on SQLite and PostgreSQL.
    Return the number of rows inserted.
    """
    # Aliases that cannot clash with the source model's own field names.
    aliases = {f"insert_{column}": expression for column, expression in columns.items()}
    select = source.order_by().annotate(**aliases).values_list(*aliases)
    sql, params = select.query.sql_with_params()
    quote = connections[select.db].ops.quote_name
    table = quote(model._meta.db_table)
    names = ", ".join(quote(column) for column in columns)
    with connections[select.db].cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({names}) {sql}", params)  # noqa: S608 - names are ours
        return cursor.rowcount
