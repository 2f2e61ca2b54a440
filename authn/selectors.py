"""The two reads of every login, each one statement written in SQL (common.sql.RowShape).

Through the ORM each cost about 3 ms of CPU to compile and unpack on the launch-morning
machine, against about 1 ms to run: the most expensive part of a login after the hash.
Both lock the row they check, as `select_for_update()` would; SQLite, which has no row
locks, takes its write lock for the whole transaction instead (transaction_mode IMMEDIATE).
"""

from __future__ import annotations

from typing import cast

from django.db import connections, router
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from authn.models import EmailOTPDevice, LoginThrottle
from common.sql import RowShape, cache_related, prepared_cursor
from participants.models import Participant, User

_USER = RowShape(User, "u")
_FIRM = RowShape(Participant, "p")
_THROTTLE = RowShape(LoginThrottle, "t")
_statements: dict[tuple[str, ...], str] = {}


def _lock(using: str, alias: str) -> str:
    features = connections[using].features
    if not features.has_select_for_update:
        return ""
    return f" FOR UPDATE OF {alias}" if features.has_select_for_update_of else " FOR UPDATE"


def _table(using: str, model: type[object]) -> str:
    return str(connections[using].ops.quote_name(model._meta.db_table))  # type: ignore[attr-defined]


def _account_sql(using: str) -> str:
    key = ("account", using)
    sql = _statements.get(key)
    if sql is None:
        totp, email = _table(using, TOTPDevice), _table(using, EmailOTPDevice)
        # The first confirmed app and the first confirmed email device, as
        # authn.devices.primary_device() chooses.
        sql = (
            f"SELECT {_USER.columns(using)}, {_FIRM.columns(using)},"  # noqa: S608 - names from the models, values are parameters
            f" (SELECT d.id FROM {totp} d WHERE d.user_id = u.id AND d.confirmed = %s"
            f"  ORDER BY d.id LIMIT 1),"
            f" (SELECT e.id FROM {email} e WHERE e.user_id = u.id AND e.confirmed = %s"
            f"  ORDER BY e.id LIMIT 1)"
            f" FROM {_table(using, User)} u"
            f" LEFT JOIN {_table(using, Participant)} p ON p.id = u.participant_id"
            # The index on LOWER(login_id) (participants' user_login_id_ci_unique).
            f" WHERE LOWER(u.{_quote(using, 'login_id')}) = %s"
            f"{_lock(using, 'u')}"
        )
        _statements[key] = sql
    return sql


def _quote(using: str, name: str) -> str:
    return str(connections[using].ops.quote_name(name))


def account_for_login(*, normalized_login_id: str) -> User | None:
    """Return the user with this login ID, locked, with their firm and the ids of their
    confirmed app and email devices (`app_device_id`, `email_device_id`); None when the ID
    names nobody. The lock makes parallel guesses at one account wait their turn."""
    using = router.db_for_write(User)
    with prepared_cursor(using) as cursor:
        cursor.execute(_account_sql(using), [True, True, normalized_login_id])
        row = cursor.fetchone()
    if row is None:
        return None
    user = cast(User, _USER.instance(using, row))
    at = len(_USER)
    cache_related(user, "participant", _FIRM.instance(using, row, at))
    at += len(_FIRM)
    user.app_device_id, user.email_device_id = row[at], row[at + 1]  # type: ignore[attr-defined]
    return user


def throttle_for_update(*, key: str) -> LoginThrottle | None:
    """Return the throttle row of a login ID, locked; None if the ID never failed.

    Read in a statement of its own, after the user's row is locked: a row read in the
    same statement as the lock would be the one from before the wait, and a guess that
    queued behind another would not see the failure that one counted.
    """
    using = router.db_for_write(LoginThrottle)
    key_sql = ("throttle", using)
    sql = _statements.get(key_sql)
    if sql is None:
        sql = _statements[key_sql] = (
            f"SELECT {_THROTTLE.columns(using)} FROM {_table(using, LoginThrottle)} t"  # noqa: S608 - names from the models, values are parameters
            f" WHERE t.{_quote(using, 'key')} = %s{_lock(using, 't')}"
        )
    with prepared_cursor(using) as cursor:
        cursor.execute(sql, [key])
        row = cursor.fetchone()
    return None if row is None else cast(LoginThrottle, _THROTTLE.instance(using, row))


def _device_sql(using: str, model: type[Device], *, by_id: bool) -> str:
    key = ("device", using, model._meta.label, str(by_id))
    sql = _statements.get(key)
    if sql is None:
        device = _shape(model)
        which = "d.id = %s AND " if by_id else ""
        sql = (
            f"SELECT {device.columns(using)}, {_USER.columns(using)}, {_FIRM.columns(using)}"  # noqa: S608 - names from the models, values are parameters
            f" FROM {_table(using, model)} d"
            f" JOIN {_table(using, User)} u ON u.id = d.user_id"
            f" LEFT JOIN {_table(using, Participant)} p ON p.id = u.participant_id"
            f" WHERE {which}d.user_id = %s AND d.confirmed = %s"
            f" ORDER BY d.id LIMIT 1{_lock(using, 'd')}"
        )
        _statements[key] = sql
    return sql


_device_shapes: dict[str, RowShape] = {}


def _shape(model: type[Device]) -> RowShape:
    shape = _device_shapes.get(model._meta.label)
    if shape is None:
        shape = _device_shapes[model._meta.label] = RowShape(model, "d")
    return shape


def device_for_code(*, model: type[Device], user_id: int, device_id: int | None) -> Device | None:
    """Return the user's confirmed device of `model` (the one with `device_id`, or their
    first), locked, with its user and the user's firm: one statement."""
    using = router.db_for_write(model)
    params: list[int | bool] = [user_id, True]
    if device_id is not None:
        params.insert(0, device_id)
    with prepared_cursor(using) as cursor:
        cursor.execute(_device_sql(using, model, by_id=device_id is not None), params)
        row = cursor.fetchone()
    if row is None:
        return None
    shape = _shape(model)
    device = cast(Device, shape.instance(using, row))
    user = cast(User, _USER.instance(using, row, len(shape)))
    cache_related(user, "participant", _FIRM.instance(using, row, len(shape) + len(_USER)))
    cache_related(device, "user", user)
    return device
