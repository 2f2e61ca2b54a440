"""`make bench`, part `connectivity`: the undo at the end of a connectivity-test session.

BENCH_UNDO_ACCOUNTS (5,000) users of 100 firms, each with an authenticator app and ten
backup codes, change their password and their app during Session 2 (whose changes are not
carried forward): each change goes through `authn.rehearsal.account_change_guard`, which
keeps the account as it was. Then, for BENCH_UNDO_ROUNDS rounds:

- the undo (`authn.rehearsal.session_undo`): every account put back (devices, codes,
  password), each user told by email (outbox rows) and audited, in one transaction;
- beside it, a bare restore of the same rows: the same devices and codes deleted and
  inserted again from model instances built before the clock starts, and the same users'
  password set in one UPDATE, in one transaction.

Goal: the undo at most GOAL_UNDO_RATIO times the bare restore, and its queries the same
for 5,000 accounts as for 50 (BENCH_UNDO_SMALL). Between rounds the accounts are changed
again and the undo's claim reset, outside the clock.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from typing import Any

GOAL_UNDO_RATIO = 2.0
FIRMS = 100
CODES = 10
NEW_PASSWORD_HASH = "md5$bench$changed-in-session-2"


def _timed(action: Callable[[], Any]) -> float:
    from django.db import transaction

    started = time.perf_counter()
    with transaction.atomic():
        action()
    return (time.perf_counter() - started) * 1000


class UndoWorld:
    """An event with a Session 2, and `accounts` users who changed their account in it."""

    def __init__(self, accounts: int, *, day: dt.date, prefix: str) -> None:
        from django.contrib.auth.hashers import make_password
        from django.utils import timezone

        from migration.connectivity import event_from_circular, hong_kong_at
        from participants.models import Participant, ParticipantKind, Terminal, User

        terminal = Terminal.objects.get(code="CCASS")
        self.event = event_from_circular(terminal=terminal, day=day)
        self.event.published_at = timezone.now()
        self.event.save(update_fields=["published_at"])
        self.session = self.event.sessions.get(position=2)
        self.during = hong_kong_at(day, dt.time(22, 30))
        self.after = hong_kong_at(day, dt.time(23, 30))
        self.encoded = make_password("bench password before the test")
        firms = Participant.objects.bulk_create(
            Participant(
                participant_id=f"{prefix}{n:04d}",
                name=f"Undo Bench {prefix} {n}",
                kind=ParticipantKind.CP,
                terminal=terminal,
            )
            for n in range(min(FIRMS, accounts))
        )
        users = User.objects.bulk_create(
            User(
                login_id=f"{prefix}U{n:06d}",
                participant=firms[n % len(firms)],
                password=self.encoded,
                email=f"{prefix.lower()}{n}@undo.example",
                two_factor_ready_at=timezone.now(),
            )
            for n in range(accounts)
        )
        if users and users[0].pk is None:
            users = list(User.objects.filter(login_id__startswith=f"{prefix}U").order_by("pk"))
        self.user_ids = [user.pk for user in users]
        self._devices_create()
        self._snapshots_take()
        self.kept = self._rows()

    def _devices_create(self) -> None:
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from authn.models import BackupCode, BackupCodeDevice
        from authn.secrets import secret_hash

        TOTPDevice.objects.bulk_create(
            TOTPDevice(user_id=pk, name="Authenticator app", confirmed=True) for pk in self.user_ids
        )
        sets = BackupCodeDevice.objects.bulk_create(
            BackupCodeDevice(user_id=pk, name="Backup codes", confirmed=True)
            for pk in self.user_ids
        )
        if sets and sets[0].pk is None:
            sets = list(BackupCodeDevice.objects.filter(user_id__in=self.user_ids))
        BackupCode.objects.bulk_create(
            BackupCode(
                device_id=backup.pk, code_hash=secret_hash("backup-code", f"{n}-{backup.pk}")
            )
            for backup in sets
            for n in range(CODES)
        )

    def _snapshots_take(self) -> None:
        """Each account's first change in Session 2 goes through the guard, as the portal's."""
        import time_machine
        from django.db import transaction

        from authn import rehearsal
        from participants.models import User

        with time_machine.travel(self.during, tick=False), transaction.atomic():
            for user in User.objects.filter(pk__in=self.user_ids):
                rehearsal.account_change_guard(user=user)

    def _rows(self) -> dict[type[Any], list[Any]]:
        """The rows the restore must put back, as model instances (built outside any clock)."""
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from authn.models import BackupCode, BackupCodeDevice

        return {
            TOTPDevice: list(TOTPDevice.objects.filter(user_id__in=self.user_ids)),
            BackupCodeDevice: list(BackupCodeDevice.objects.filter(user_id__in=self.user_ids)),
            BackupCode: list(BackupCode.objects.filter(device__user_id__in=self.user_ids)),
        }

    def change(self) -> None:
        """What the users did in Session 2: a new password, a new app (outside the clock)."""
        from django.db import transaction
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from authn.models import AccountSnapshot, BackupCode
        from migration.models import ConnectivitySession
        from participants.models import User

        with transaction.atomic():
            User.objects.filter(pk__in=self.user_ids).update(password=NEW_PASSWORD_HASH)
            BackupCode.objects.filter(device__user_id__in=self.user_ids).delete()
            TOTPDevice.objects.filter(user_id__in=self.user_ids).delete()
            TOTPDevice.objects.bulk_create(
                TOTPDevice(user_id=pk, name="New phone", confirmed=True) for pk in self.user_ids
            )
            AccountSnapshot.objects.filter(session=self.session).update(restored_at=None)
            ConnectivitySession.objects.filter(pk=self.session.pk).update(
                undone_at=None, undo_counts={}
            )

    def undo(self) -> dict[str, int] | None:
        from authn import rehearsal

        return rehearsal.session_undo(session_id=self.session.pk, now=self.after)

    def bare_restore(self) -> None:
        from participants.models import User

        models = list(self.kept)
        for model in reversed(models):
            field = "device__user_id__in" if model.__name__ == "BackupCode" else "user_id__in"
            rows = model.objects.filter(**{field: self.user_ids})
            rows._raw_delete(rows.db)
        for model in models:
            model.objects.bulk_create(self.kept[model])
        User.objects.filter(pk__in=self.user_ids).update(password=self.encoded)

    def restored(self) -> bool:
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from participants.models import User

        return (
            not User.objects.filter(pk__in=self.user_ids, password=NEW_PASSWORD_HASH).exists()
            and not TOTPDevice.objects.filter(user_id__in=self.user_ids, name="New phone").exists()
        )


def _undo_queries(world: UndoWorld) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    world.change()
    with CaptureQueriesContext(connection) as captured:
        world.undo()
    return len(captured.captured_queries)


def connectivity_bench(section: Any, *, accounts: int, small: int, rounds: int) -> None:
    from tests.bench import _tasks_recorded

    # The undo queues the users' emails; sending them is the relay's, not the undo's.
    with _tasks_recorded():
        _connectivity_bench(section, accounts=accounts, small=small, rounds=rounds)


def _connectivity_bench(section: Any, *, accounts: int, small: int, rounds: int) -> None:
    from tests.bench import _analyze

    large = UndoWorld(accounts, day=dt.date(2031, 6, 14), prefix="UL")
    little = UndoWorld(small, day=dt.date(2031, 6, 21), prefix="US")
    _analyze()
    undo_ms: list[float] = []
    bare_ms: list[float] = []
    for _round in range(rounds):
        large.change()
        counts: dict[str, Any] = {}
        undo_ms.append(_timed(lambda: counts.update(large.undo() or {})))
        if counts.get("accounts") != accounts or not large.restored():
            raise RuntimeError(f"the undo put back {counts}, not {accounts} accounts")
        large.change()
        bare_ms.append(_timed(large.bare_restore))
        if not large.restored():
            raise RuntimeError("the bare restore did not put the accounts back")
    queries_large = _undo_queries(large)
    queries_small = _undo_queries(little)
    undo = statistics.median(undo_ms)
    bare = statistics.median(bare_ms)
    ratio = undo / bare
    section.figure(f"connectivity_undo_{accounts}_accounts", f"{undo:.0f}", "ms")
    section.figure(f"bare_restore_{accounts}_accounts", f"{bare:.0f}", "ms")
    section.figure("connectivity_undo_to_bare_restore", f"{ratio:.2f}", "x")
    section.figure(
        f"connectivity_undo_queries_at_{accounts}_accounts", str(queries_large), "queries"
    )
    section.figure(f"connectivity_undo_queries_at_{small}_accounts", str(queries_small), "queries")
    section.details.append(
        f"connectivity undo: {accounts} accounts (a password, an app and {CODES} backup codes"
        f" each), {rounds} rounds: undo {sorted(round(ms) for ms in undo_ms)} ms (with the"
        f" users' emails and audit rows), bare restore {sorted(round(ms) for ms in bare_ms)} ms"
    )
    if ratio > GOAL_UNDO_RATIO:
        section.missed.append(f"connectivity_undo_to_bare_restore {ratio:.2f} > {GOAL_UNDO_RATIO}")
    if queries_large != queries_small:
        section.missed.append(
            f"connectivity_undo_queries {queries_large} at {accounts} != {queries_small} at {small}"
        )
