"""Database sessions with fewer round trips per login.

Django's database store creates the rotated session at once in cycle_key() (a
key-exists SELECT, then an INSERT in its own transaction), loads the old row
before deleting it, and wraps every write in BEGIN/COMMIT. A login rotates the
key and then writes the session again anyway, so here the new row is written
once, by the response's save(), as Django's own flush() already does.
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

    def cycle_key(self) -> None:
        data = self._session  # type: ignore[attr-defined]
        key = self.session_key
        self._session_key = None
        self._session_cache = data
        self.modified = True
        if key:
            self.delete(key)

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self.model.objects.filter(session_key=session_key).delete()

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
