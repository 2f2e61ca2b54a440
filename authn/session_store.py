"""Database sessions in the fewest statements, each written once in SQL.

Every request of a login reads or writes its session, so the store is on the login path
four times. Django's database store goes through the ORM for one-row statements on a
three-column table, and at login creates the rotated session at once in cycle_key() (a
key-exists SELECT, then an INSERT in its own transaction) after loading the old row and
before deleting it. Here:

- the session is read, inserted, updated and deleted by one plain statement each, on the
  same table and with the same values as Django's store (`django_session`, the signed
  data, the expiry), so `clearsessions` and the admin keep working;
- a login's rotation moves the row to its new key once, by the response's save(), in one
  UPDATE of the key and the data: the old key stops working in the same statement that
  the new one starts to;
- a statement outside a transaction is its own transaction (no BEGIN/COMMIT pair). A login
  step writes its session inside the step's own transaction (`authn.decorators.
  session_in_transaction`), so that the step commits once, and the response's save() then
  finds nothing new to write. The INSERT of a new key skips a key that exists (ON CONFLICT
  DO NOTHING) and draws another, so a clash needs no savepoint; a rotation whose new key
  clashes (one in 2**165) fails the request inside a transaction, which rolls back whole;
- the statements are prepared on the server (`common.sql.prepared_cursor`).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Any

from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, connections, router, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from common.sql import prepared_cursor

# Random bytes below this are used, each as one of the 36 characters Django's keys are made
# of (36 * 7 = 252: no character more likely than another).
_UNBIASED_BELOW = len(VALID_KEY_CHARS) * (256 // len(VALID_KEY_CHARS))


def new_session_key(length: int = 32) -> str:
    """A key like Django's (`length` characters of VALID_KEY_CHARS from the system's random
    source, about 165 bits) drawn from one read of random bytes, where get_random_string()
    asks the system once per character."""
    key = ""
    while len(key) < length:
        key += "".join(
            VALID_KEY_CHARS[byte % len(VALID_KEY_CHARS)]
            for byte in secrets.token_bytes(length + 8)
            if byte < _UNBIASED_BELOW
        )
    return key[:length]


class SessionStore(DatabaseSessionStore):
    # The key this session had before cycle_key(), until save() moves the row to its new key.
    _previous_key: str | None = None

    def _get_new_session_key(self) -> str:
        # No SELECT to see whether the key exists: the primary key refuses a clash
        # (one in 2**165), save() turns that into CreateError and create() retries.
        return new_session_key()

    # One statement each --------------------------------------------------------------

    def _using(self, *, write: bool) -> str:
        if write:
            return str(router.db_for_write(self.model))
        return str(router.db_for_read(self.model))

    def _execute(self, sql: str, params: list[Any], *, write: bool) -> CursorWrapper:
        using = self._using(write=write)
        table = connections[using].ops.quote_name(self.model._meta.db_table)
        cursor = prepared_cursor(using)
        cursor.execute(sql.format(table=table), params)
        return cursor

    def _write(self, sql: str, params: list[Any]) -> int:
        """Run one write; return the rows it changed."""
        with self._execute(sql, params, write=True) as cursor:
            return int(cursor.rowcount)

    # What the last committed write of this request stored: the key, and how many changes
    # the session had had by then. Every change marks the session modified (as Django has
    # it, a change inside a stored dict is marked by setting `modified` itself).
    _written: tuple[str | None, int] | None = None
    _changes = 0
    _modified = False

    @property
    def modified(self) -> bool:
        return self._modified

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = value
        if value:
            self._changes += 1

    def _state(self) -> tuple[str | None, int]:
        return self.session_key, self._changes

    def _remember_written(self) -> None:
        """Remember what was just written once it is committed: a write that a rollback undid
        must be written again by the response's save()."""
        state = self._state()
        self._written = None

        def written() -> None:
            self._written = state

        transaction.on_commit(written, using=self._using(write=True))

    def _expiry(self, using: str, value: dt.datetime) -> Any:
        return connections[using].ops.adapt_datetimefield_value(value)

    # The store's verbs -----------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        key = self.session_key
        if key is None:
            return {}
        using = self._using(write=False)
        try:
            with self._execute(
                "SELECT session_data FROM {table} WHERE session_key = %s AND expire_date > %s",
                [key, self._expiry(using, timezone.now())],
                write=False,
            ) as cursor:
                row = cursor.fetchone()
        except SuspiciousOperation as error:  # as Django's store: logged, then a new session
            logging.getLogger(f"django.security.{error.__class__.__name__}").warning(str(error))
            row = None
        if row is None:
            self._session_key = None
            return {}
        return dict(self.decode(row[0]))

    def exists(self, session_key: str | None) -> bool:
        with self._execute(
            "SELECT 1 FROM {table} WHERE session_key = %s", [session_key], write=False
        ) as cursor:
            return cursor.fetchone() is not None

    def cycle_key(self) -> None:
        """Give the session a new key (at login): the row moves to it when the response saves
        the session, in one UPDATE of its key, rather than a DELETE and an INSERT."""
        data = self._session  # type: ignore[attr-defined]
        key = self.session_key
        self._session_key = None
        self._session_cache = data
        self.modified = True
        if key and self._previous_key is None:
            self._previous_key = key

    def create(self) -> None:
        previous, self._previous_key = self._previous_key, None
        if previous is not None and self._rekey(previous):
            return
        super().create()  # draws keys until save(must_create=True) inserts one
        self._remember_written()  # as of now: create() marks the session modified last

    def _rekey(self, previous: str) -> bool:
        """Move the row of `previous` to a new key with the session's data; False if the
        row is gone (it expired or was deleted), for create() to insert one."""
        data = self.encode(self._get_session(no_load=True))  # type: ignore[attr-defined]
        expiry = self._expiry(self._using(write=True), self.get_expiry_date())
        for _attempt in range(10):
            key = self._get_new_session_key()
            try:
                moved = self._write(
                    "UPDATE {table} SET session_key = %s, session_data = %s, expire_date = %s"
                    " WHERE session_key = %s",
                    [key, data, expiry, previous],
                )
            except IntegrityError:
                if transaction.get_connection(self._using(write=True)).in_atomic_block:
                    raise  # the transaction is spoilt: it rolls back whole
                continue  # the new key is taken (one in 2**165): draw another
            if moved:
                self._session_key = key
                self.modified = True
                self._remember_written()
            return bool(moved)
        raise CreateError("no free session key after ten attempts")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        if not must_create and self._written is not None and self._written == self._state():
            # Written in this request already (a login step's own transaction), unchanged
            # since: the response's save() has nothing to add.
            return None
        key = self._get_or_create_session_key()  # type: ignore[attr-defined]
        data = self.encode(self._get_session(no_load=must_create))  # type: ignore[attr-defined]
        expiry = self._expiry(self._using(write=True), self.get_expiry_date())
        if must_create:
            if not self._write(
                "INSERT INTO {table} (session_key, session_data, expire_date)"
                " VALUES (%s, %s, %s) ON CONFLICT (session_key) DO NOTHING",
                [key, data, expiry],
            ):
                raise CreateError  # the key is taken: create() draws another
        elif not self._write(
            "UPDATE {table} SET session_data = %s, expire_date = %s WHERE session_key = %s",
            [data, expiry, key],
        ):
            # The row is gone (logged out elsewhere, expired and cleared): as Django's store.
            raise UpdateError
        self._remember_written()
        return None

    def delete(self, session_key: str | None = None) -> None:
        self._written = None
        if session_key is None and self._previous_key is not None:
            # Flushed after a cycle_key() whose row was never moved: the old row goes too.
            self._write("DELETE FROM {table} WHERE session_key = %s", [self._previous_key])
            self._previous_key = None
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self._write("DELETE FROM {table} WHERE session_key = %s", [session_key])
