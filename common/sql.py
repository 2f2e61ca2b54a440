"""Set-based writes the ORM has no verb for, and rows read in SQL on the hottest paths."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connections, models, router
from django.db.backends.utils import CursorWrapper
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


# Rows read in hand-written SQL, made into model instances as the ORM makes them -------
#
# The login path sends the same few statements tens of times a second. Compiling each
# through the ORM costs more than running it (about 0.5 ms of CPU against 0.2 ms on the
# database, measured with `make bench`), so those few are written once in SQL. These
# helpers keep them honest: the columns come from the models, and each value passes
# through the converters the ORM would apply (dates on SQLite, JSON, booleans).


class RowShape:
    """The concrete columns of one model under a table alias, and how to read them back."""

    def __init__(self, model: type[models.Model], alias: str) -> None:
        self.model = model
        self.alias = alias
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [field.attname for field in self.fields]
        self.pk_index = self.fields.index(model._meta.pk)  # type: ignore[arg-type]
        self._converters: dict[str, list[tuple[int, list[Any], Any]]] = {}

    def __len__(self) -> int:
        return len(self.fields)

    def columns(self, using: str) -> str:
        """The select list: "alias"."column", ... in the order of `fields`."""
        quote = connections[using].ops.quote_name
        return ", ".join(f"{quote(self.alias)}.{quote(str(field.column))}" for field in self.fields)

    def _converters_for(self, using: str) -> list[tuple[int, list[Any], Any]]:
        found = self._converters.get(using)
        if found is None:
            connection = connections[using]
            found = []
            for index, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                converters = connection.ops.get_db_converters(column) + column.get_db_converters(
                    connection
                )
                if converters:
                    found.append((index, converters, column))
            self._converters[using] = found
        return found

    def instance(self, using: str, row: Sequence[Any], start: int = 0) -> models.Model | None:
        """The instance in `row` from column `start`, or None where an outer join found none."""
        values = list(row[start : start + len(self.fields)])
        if values[self.pk_index] is None:
            return None
        connection = connections[using]
        for index, converters, column in self._converters_for(using):
            for converter in converters:
                values[index] = converter(values[index], column, connection)
        return self.model.from_db(using, self.attnames, values)


def prepared_cursor(using: str) -> CursorWrapper:
    """A cursor for the hottest paths' statements: on PostgreSQL each is prepared on the
    server the first time a connection runs it, and planned no more (common.postgresql);
    elsewhere a plain cursor."""
    connection = connections[using]
    prepared = getattr(connection, "prepared_cursor", None)
    return prepared() if prepared is not None else connection.cursor()


def cache_related(instance: models.Model, name: str, related: models.Model | None) -> None:
    """Attach `related` as select_related() would, so that reading it sends no query."""
    instance._meta.get_field(name).set_cached_value(instance, related)  # type: ignore[union-attr]


def insert_instance(instance: models.Model) -> None:
    """Insert a new instance in one plain INSERT, with the values Model.save() would write
    (defaults, pre_save() such as auto_now, each field's database form), and give it its id.

    For rows written on the hottest paths by models with no save() logic of their own to
    run and no signal receivers: unlike save(), it sends no pre_save or post_save signal.
    """
    model = type(instance)
    meta = model._meta
    using = router.db_for_write(model, instance=instance)
    connection = connections[using]
    pk = meta.pk
    fields = [
        field
        for field in meta.concrete_fields
        if field is not pk or getattr(instance, field.attname) is not None
    ]
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields
    ]
    quote = connection.ops.quote_name
    names = ", ".join(quote(str(field.column)) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES ({marks})"  # noqa: S608 - names from the model
    returning = pk not in fields and connection.features.can_return_columns_from_insert
    if returning:
        sql += f" RETURNING {quote(str(pk.column))}"  # type: ignore[union-attr]
    with prepared_cursor(using) as cursor:
        cursor.execute(sql, values)
        if pk not in fields:
            new_id = cursor.fetchone()[0] if returning else cursor.lastrowid
            setattr(instance, pk.attname, new_id)  # type: ignore[union-attr]
    instance._state.adding = False
    instance._state.db = using


def update_by_pk(
    model: type[models.Model],
    pk: Any,
    values: dict[str, Any],
    *,
    unless_set: Collection[str] = (),
    **where: Any,
) -> int:
    """Update one row by primary key (and `where`'s equalities) in one plain UPDATE, each
    value in the database form save() would write; return the number of rows changed.

    A field named in `unless_set` keeps the value it has, if it has one (COALESCE).
    """
    using = router.db_for_write(model)
    connection = connections[using]
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [meta.get_field(name) for name in values]
    assignments = ", ".join(
        f"{quote(str(field.column))} = COALESCE({quote(str(field.column))}, %s)"  # type: ignore[union-attr]
        if name in unless_set
        else f"{quote(str(field.column))} = %s"  # type: ignore[union-attr]
        for name, field in zip(values, fields, strict=True)
    )
    params = [
        field.get_db_prep_save(value, connection)  # type: ignore[union-attr]
        for field, value in zip(fields, values.values(), strict=True)
    ]
    matched = [meta.pk, *(meta.get_field(name) for name in where)]
    condition = " AND ".join(f"{quote(str(field.column))} = %s" for field in matched)  # type: ignore[union-attr]
    params += [
        field.get_db_prep_value(value, connection)  # type: ignore[union-attr]
        for field, value in zip(matched, [pk, *where.values()], strict=True)
    ]
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {condition}"  # noqa: S608 - names from the model
    with prepared_cursor(using) as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


@contextmanager
def saving_changes_only(instance: models.Model) -> Iterator[None]:
    """Within the block, `instance.save()` writes only the fields changed since the block
    began, in one plain UPDATE by primary key (update_by_pk), as save(update_fields=...)
    would but without compiling it through the ORM each time.

    For a row locked in the caller's transaction (so it exists: unlike save(), nothing is
    inserted) whose model has no save() of its own and no signal receivers (none are sent),
    saved by code that is not the portal's: django-otp's verify_token() saves the whole
    device when a code is used up, on every login.
    """
    names = [field.attname for field in instance._meta.concrete_fields if not field.primary_key]
    before = {name: getattr(instance, name) for name in names}

    def save(*_args: Any, **_kwargs: Any) -> None:
        changed = {name: getattr(instance, name) for name in names}
        changed = {name: value for name, value in changed.items() if value != before[name]}
        if changed:
            update_by_pk(type(instance), instance.pk, changed)
            before.update(changed)

    instance.save = save  # type: ignore[method-assign]
    try:
        yield
    finally:
        del instance.save
