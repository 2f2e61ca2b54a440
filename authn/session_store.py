"""Database sessions with fewer round trips per login.

Django's database store creates the rotated session at once in cycle_key() (a
key-exists SELECT, then an INSERT in its own transaction), loads the old row
before deleting it, and wraps every write in BEGIN/COMMIT. A login rotates the
key and then writes the session again anyway, so here the row moves to its new
key once, by the response's save(), in one UPDATE of the key and the data: the
old key stops working in the same statement that the new one starts to.
"""

from __future__ import annotations

from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import DatabaseError, IntegrityError, router, transaction
from django.utils.crypto import get_random_string


class SessionStore(DatabaseSessionStore):
    def _get_new_session_key(self) -> str:
        # No SELECT to see whether the key exists: the primary key refuses a clash
        # (one in 2**165), save() turns that into CreateError and create() retries.
        return get_random_string(32, VALID_KEY_CHARS)

    # The key this session had before cycle_key(), until save() moves the row to its new key.
    _previous_key: str | None = None

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

    def _delete(self, session_key: str | None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self.model.objects.filter(session_key=session_key).delete()

    def create(self) -> None:
        previous, self._previous_key = self._previous_key, None
        if previous is not None and self._rekey(previous):
            return
        super().create()

    def _rekey(self, previous: str) -> bool:
        """Move the row of `previous` to a new key with the session's data; False if the
        row is gone (it expired or was deleted), for create() to insert one."""
        data = self._get_session(no_load=True)  # type: ignore[attr-defined]
        using = router.db_for_write(self.model)
        for _attempt in range(10):
            key = self._get_new_session_key()
            rows = self.model.objects.using(using).filter(session_key=previous)
            values = {
                "session_key": key,
                "session_data": self.encode(data),
                "expire_date": self.get_expiry_date(),
            }
            try:
                if transaction.get_connection(using).in_atomic_block:
                    with transaction.atomic(using=using):  # a savepoint to fail back to
                        moved = rows.update(**values)
                else:
                    # In autocommit one statement is its own transaction: no BEGIN/COMMIT.
                    moved = rows.update(**values)
            except IntegrityError:
                continue  # the new key is taken (one in 2**165): draw another
            if moved:
                self._session_key = key
                self.modified = True
            return bool(moved)
        raise CreateError("no free session key after ten attempts")

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None and self._previous_key is not None:
            # Flushed after a cycle_key() whose row was never moved: the old row goes too.
            self.model.objects.filter(session_key=self._previous_key).delete()
            self._previous_key = None
        self._delete(session_key)

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        obj = self.create_model_instance(data)
        using = router.db_for_write(self.model, instance=obj)
        if transaction.get_connection(using).in_atomic_block:
            return super().save(must_create=must_create)
        # In autocommit one statement is its own transaction: no BEGIN/COMMIT pair.
        try:
            obj.save(force_insert=must_create, force_update=not must_create, using=using)
        except IntegrityError:
            if must_create:
                raise CreateError from None
            raise
        except DatabaseError:
            if not must_create:
                raise UpdateError from None
            raise
