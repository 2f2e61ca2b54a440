"""Provision participants, users and smartcards from CSV files: check every row, apply all or none.

Staff run these through `manage.py import_participants`, `import_users` and `import_smartcards`.
Each file is read whole, every row is checked against the database and the rest of the file,
and only a file with no refused row is written, in one transaction. The report says per line
what was (or would be) done, or why the row is refused.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from enum import StrEnum
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from participants.certificates import certificate_facts
from participants.models import (
    DaDuty,
    Participant,
    ParticipantKind,
    Role,
    Smartcard,
    Terminal,
    User,
    normalize_email,
)

# Rows looked up per query: well under every database's limit on query parameters.
CHUNK = 500

_TRUE = {"yes", "true", "1"}
_FALSE = {"no", "false", "0"}


class ProvisioningError(Exception):
    """The whole file, or the card asked for, cannot be used; the message says why."""


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    REFUSED = "refused"


@dataclasses.dataclass
class Row:
    """One line of the file: what it does, or why it is refused."""

    line: int
    key: str
    action: Action
    # The changes of an update, a note on a creation, or the reason for a refusal.
    detail: str = ""
    instance: models.Model | None = dataclasses.field(default=None, repr=False)
    fields: tuple[str, ...] = ()
    # What the row is about (a participant ID, a login ID, a fingerprint), folded:
    # two rows about the same thing are both refused.
    identity: str = ""


@dataclasses.dataclass
class Report:
    """The rows of one file and whether they were written."""

    noun: str
    rows: list[Row]
    dry_run: bool
    applied: bool = False

    @property
    def refused(self) -> list[Row]:
        return [row for row in self.rows if row.action == Action.REFUSED]

    def count(self, action: Action) -> int:
        return sum(1 for row in self.rows if row.action == action)

    def lines(self) -> Iterator[str]:
        for row in self.rows:
            yield f"line {row.line}: {row.key or '(no key)'}: {self._describe(row)}"

    def summary(self) -> str:
        if self.refused:
            return (
                f"{len(self.refused)} of {len(self.rows)} rows refused; "
                f"no {self.noun} were written."
            )
        would = "" if self.applied else "would be "
        counts = (
            f"{self.noun.capitalize()}: {self.count(Action.CREATE)} {would}created, "
            f"{self.count(Action.UPDATE)} {would}updated, {self.count(Action.UNCHANGED)} unchanged."
        )
        return counts if self.applied else f"Dry run, nothing was written. {counts}"

    def _describe(self, row: Row) -> str:
        if row.action == Action.REFUSED:
            return f"refused: {row.detail}"
        if row.action == Action.UNCHANGED:
            return "unchanged"
        done = {Action.CREATE: "created", Action.UPDATE: "updated"}[row.action]
        verb = done if self.applied else f"would be {done}"
        return f"{verb} ({row.detail})" if row.detail else verb


# Reading the file ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Record:
    """A data row of the file, its cells by column name."""

    line: int
    cells: dict[str, str]
    problem: str = ""

    def get(self, column: str) -> str:
        return self.cells.get(column, "").strip()

    def raw(self, column: str) -> str:
        """Return the cell as typed: a password keeps its spaces."""
        return self.cells.get(column, "")


def read_records(
    path: Path,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
    required_any: Sequence[str] = (),
) -> list[Record]:
    """Return the data rows of a CSV file whose header row names its columns."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ProvisioningError(f"cannot read the file: {error.strerror}") from error
    try:
        # utf-8-sig drops a byte order mark if there is one.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ProvisioningError(
            f"line {line} is not UTF-8 text; save the file as CSV UTF-8"
        ) from error
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    expected = f"the columns are {', '.join(required)}" + (
        f", and optionally {', '.join(optional)}" if optional else ""
    )
    try:
        header = [_column_name(cell) for cell in next(reader, [])]
        if not any(header):
            raise ProvisioningError(f"the first row must be the header row: {expected}")
        _check_header(header, required, optional, required_any, expected)
        records = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            problem = ""
            if any(cell.strip() for cell in cells[len(header) :]):
                problem = f"{len(cells)} cells, but the header names {len(header)} columns"
            named = {name: cell for name, cell in zip(header, cells, strict=False) if name}
            records.append(Record(reader.line_num, named, problem))
    except csv.Error as error:
        raise ProvisioningError(f"line {reader.line_num}: {error}") from error
    return records


def _column_name(cell: str) -> str:
    return "_".join(cell.strip().lower().split())


def _check_header(
    header: list[str],
    required: Sequence[str],
    optional: Sequence[str],
    required_any: Sequence[str],
    expected: str,
) -> None:
    named = [name for name in header if name]
    repeated = sorted({name for name in named if named.count(name) > 1})
    if repeated:
        raise ProvisioningError(f"the header names {', '.join(repeated)} more than once")
    unknown = [name for name in named if name not in (*required, *optional)]
    if unknown:
        raise ProvisioningError(
            f"unknown column {', '.join(unknown)} in the header row; {expected}"
        )
    missing = [name for name in required if name not in named]
    if missing:
        raise ProvisioningError(f"missing column {', '.join(missing)}; {expected}")
    if required_any and not set(required_any) & set(named):
        raise ProvisioningError(f"the header needs a column {' or '.join(required_any)}")


# Checking one row ----------------------------------------------------------------------


class _Refused(Exception):
    """This row cannot be applied; the message says why."""


def _require(record: Record, *columns: str) -> None:
    for column in columns:
        if not record.get(column):
            raise _Refused(f"{column} is empty")


def _check_field(model: type[models.Model], name: str, value: object) -> None:
    """Refuse a value the model field's validators (format, length) would refuse."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)
    try:
        field.clean(value, None)
    except ValidationError as error:
        raise _Refused(f"{name} {value}: {' '.join(error.messages)}") from error


def _choice(record: Record, column: str, choices: type[models.TextChoices], value: str) -> str:
    if value not in choices.values:
        raise _Refused(f"{column} {record.get(column)!r} is not one of {', '.join(choices.values)}")
    return value


def _boolean(record: Record, column: str) -> bool | None:
    """Return the cell as a boolean, or None when it is empty (the value is not given)."""
    value = record.get(column).lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _Refused(f"{column} {record.get(column)!r} is not yes or no")


def _datetime(record: Record, column: str) -> dt.datetime | None:
    value = record.get(column)
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise _Refused(f"{column} {value!r} is not an ISO 8601 date and time") from error
    # A time without an offset is the portal's local time (Hong Kong).
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat()
    return str(value) if value not in ("", None) else "(empty)"


def _created(
    record: Record, key: str, instance: models.Model, identity: str, detail: str = ""
) -> Row:
    return Row(record.line, key, Action.CREATE, detail, instance, identity=identity)


def _changed(
    record: Record, key: str, instance: models.Model, values: dict[str, Any], identity: str
) -> Row:
    """Set the values that differ on the instance; return the row that says which."""
    fields, changes = [], []
    for name, value in values.items():
        current = getattr(instance, name)
        if current != value:
            fields.append(name)
            changes.append(f"{name} {_shown(current)} -> {_shown(value)}")
            setattr(instance, name, value)
    if not fields:
        return Row(record.line, key, Action.UNCHANGED, instance=instance, identity=identity)
    return Row(
        record.line, key, Action.UPDATE, "; ".join(changes), instance, tuple(fields), identity
    )


def _chunked(values: Iterable[str]) -> Iterator[list[str]]:
    ordered = sorted(set(values))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


def _users_by_login(login_ids: Iterable[str]) -> dict[str, list[User]]:
    """Return the users whose login ID matches one of these case-insensitively, locked."""
    found: dict[str, list[User]] = defaultdict(list)
    for chunk in _chunked(login_id.lower() for login_id in login_ids):
        # Lower(...) IN (...) is login_id__iexact for a whole chunk in one query.
        users = (
            User.objects.select_for_update(of=("self",))
            .select_related("participant")
            .annotate(login_id_lower=Lower("login_id"))
            .filter(login_id_lower__in=chunk)
        )
        for user in users:
            found[user.login_id.lower()].append(user)
    return found


def _one_user(login_id: str, users: dict[str, list[User]]) -> User | None:
    matches = users.get(login_id.lower(), [])
    if len(matches) > 1:
        raise _Refused(
            f"login ID {login_id} matches several users: {', '.join(u.login_id for u in matches)}"
        )
    return matches[0] if matches else None


# Participants ----------------------------------------------------------------------------


def _plan_participants(records: list[Record], folder: Path) -> list[Row]:
    terminals = {terminal.code: terminal for terminal in Terminal.objects.all()}
    codes = {terminal.pk: code for code, terminal in terminals.items()}
    existing = {
        participant.participant_id: participant
        for chunk in _chunked(record.get("participant_id").upper() for record in records)
        for participant in Participant.objects.select_for_update(of=("self",)).filter(
            participant_id__in=chunk
        )
    }

    def check(record: Record) -> Row:
        _require(record, "participant_id", "name", "kind", "terminal")
        participant_id = record.get("participant_id").upper()
        _check_field(Participant, "participant_id", participant_id)
        name = record.get("name")
        _check_field(Participant, "name", name)
        kind = _choice(record, "kind", ParticipantKind, record.get("kind").upper())
        terminal = terminals.get(record.get("terminal").upper())
        if terminal is None:
            raise _Refused(
                f"terminal {record.get('terminal')!r} is not one of {', '.join(terminals)}"
            )
        values: dict[str, Any] = {"name": name, "kind": kind}
        single_da_allowed = _boolean(record, "single_da_allowed")
        if single_da_allowed is not None:
            values["single_da_allowed"] = single_da_allowed
        participant = existing.get(participant_id)
        if participant is None:
            return _created(
                record,
                participant_id,
                Participant(participant_id=participant_id, terminal=terminal, **values),
                participant_id,
            )
        if participant.terminal_id != terminal.pk:
            raise _Refused(
                f"participant {participant_id} uses the {codes[participant.terminal_id]} "
                f"terminal; an import cannot move it to {terminal.code}"
            )
        return _changed(record, participant_id, participant, values, participant_id)

    return [
        _checked(record, record.get("participant_id").upper(), partial(check, record))
        for record in records
    ]


# Users -----------------------------------------------------------------------------------


def _plan_users(records: list[Record], folder: Path) -> list[Row]:
    participants = {
        participant.participant_id: participant
        for chunk in _chunked(record.get("participant_id").upper() for record in records)
        for participant in Participant.objects.filter(participant_id__in=chunk)
    }
    users = _users_by_login(record.get("login_id") for record in records)
    now = timezone.now()

    def check(record: Record) -> Row:
        _require(record, "login_id", "participant_id", "name", "role")
        login_id = record.get("login_id")
        _check_field(User, "login_id", login_id)
        participant_id = record.get("participant_id").upper()
        participant = participants.get(participant_id)
        if participant is None:
            raise _Refused(f"participant {participant_id} does not exist")
        name = record.get("name")
        _check_field(User, "name", name)
        role = _choice(record, "role", Role, record.get("role").lower())
        duty = record.get("da_duty").lower()
        if role == Role.DA:
            if not duty:
                raise _Refused("a DA needs a da_duty: maker, checker or both")
            _choice(record, "da_duty", DaDuty, duty)
        elif duty:
            raise _Refused("da_duty must be empty for a user (role user)")
        values: dict[str, Any] = {"name": name, "role": role, "da_duty": duty}
        if record.get("email"):
            try:
                values["email"] = normalize_email(record.get("email"))
            except ValidationError as error:
                raise _Refused(
                    f"email {record.get('email')} is not a valid email address"
                ) from error
            _check_field(User, "email", values["email"])
        for scope in ("scope_online", "scope_reports"):
            entitled = _boolean(record, scope)
            if entitled is not None:
                values[scope] = entitled

        user = _one_user(login_id, users)
        if user is None:
            user = User(
                login_id=login_id, participant=participant, scope_dms=role == Role.DA, **values
            )
            if user.email:
                user.email_registered_at = now
            # The user sets a password through 2FA setup; until then none works.
            user.set_unusable_password()
            return _created(record, login_id, user, login_id.lower())
        if user.participant is None:
            raise _Refused(f"login ID {user.login_id} is an exchange staff account")
        if user.participant_id != participant.pk:
            raise _Refused(
                f"login ID {user.login_id} belongs to participant {user.participant.participant_id}"
            )
        if user.role != role:
            # Only a change of role changes the DMS scope: staff may have withdrawn a DA's.
            values["scope_dms"] = role == Role.DA
        row = _changed(record, login_id, user, values, login_id.lower())
        if row.action == Action.UPDATE:
            extra = ["version"]
            if "email" in row.fields:
                # Registered by exchange staff, not by one of the firm's DAs.
                user.email_registered_at, user.email_registered_by = now, None
                extra += ["email_registered_at", "email_registered_by"]
            # A DA request made against the user as they were is refused at approval.
            user.version += 1
            row.fields += tuple(extra)
        return row

    return [_checked(record, record.get("login_id"), partial(check, record)) for record in records]


# Smartcards ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Card:
    """A card as one row of the file describes it."""

    serial: str
    fingerprint_sha256: str
    valid_from: dt.datetime
    valid_to: dt.datetime


def _card_from_record(record: Record, folder: Path) -> _Card:
    """Return the card a row describes, from its certificate or from its cells."""
    serial = record.get("serial")
    fingerprint = record.get("fingerprint_sha256").replace(":", "").lower()
    valid_from, valid_to = _datetime(record, "valid_from"), _datetime(record, "valid_to")
    if record.get("certificate"):
        path = Path(record.get("certificate"))
        path = path if path.is_absolute() else folder / path
        try:
            facts = certificate_facts(path.read_bytes())
        except OSError as error:
            raise _Refused(f"certificate {path}: {error.strerror}") from error
        except ValueError as error:
            raise _Refused(f"certificate {path} is not a PEM certificate") from error
        if fingerprint and fingerprint != facts.fingerprint_sha256:
            raise _Refused(
                f"fingerprint_sha256 {fingerprint} is not the certificate's "
                f"({facts.fingerprint_sha256})"
            )
        if serial and serial.upper() != facts.serial:
            raise _Refused(f"serial {serial} is not the certificate's ({facts.serial})")
        serial, fingerprint = serial or facts.serial, facts.fingerprint_sha256
        valid_from, valid_to = valid_from or facts.not_before, valid_to or facts.not_after
    elif not fingerprint:
        raise _Refused("give a certificate or a fingerprint_sha256")
    else:
        _require(record, "serial", "valid_from", "valid_to")
        _check_field(Smartcard, "fingerprint_sha256", fingerprint)
    _check_field(Smartcard, "serial", serial)
    assert valid_from is not None and valid_to is not None
    if valid_to <= valid_from:
        raise _Refused(f"valid_to {_shown(valid_to)} is not after valid_from {_shown(valid_from)}")
    return _Card(serial, fingerprint, valid_from, valid_to)


def _plan_smartcards(records: list[Record], folder: Path) -> list[Row]:
    # Certificates first: the fingerprints they give are what the database is asked about.
    described: list[_Card | Row] = []
    for record in records:
        try:
            if record.problem:
                raise _Refused(record.problem)
            described.append(_card_from_record(record, folder))
        except _Refused as refusal:
            described.append(Row(record.line, _card_key(record), Action.REFUSED, str(refusal)))
    fingerprints = [card.fingerprint_sha256 for card in described if isinstance(card, _Card)]
    cards = {
        card.fingerprint_sha256: card
        for chunk in _chunked(fingerprints)
        for card in Smartcard.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(fingerprint_sha256__in=chunk)
    }
    users = _users_by_login(record.get("login_id") for record in records)

    def check(record: Record, card: _Card) -> Row:
        _require(record, "login_id")
        login_id = record.get("login_id")
        key = f"{login_id} card {card.serial}"
        user = _one_user(login_id, users)
        if user is None:
            raise _Refused(f"user {login_id} does not exist")
        if user.participant_id is None:
            raise _Refused(f"login ID {user.login_id} is an exchange staff account")
        password = record.raw("card_password")
        if not password.strip():
            password = ""
        registered = cards.get(card.fingerprint_sha256)
        if registered is None:
            if not password:
                raise _Refused("card_password is empty: a new card needs one")
            new = Smartcard(
                user=user,
                serial=card.serial,
                fingerprint_sha256=card.fingerprint_sha256,
                valid_from=card.valid_from,
                valid_to=card.valid_to,
            )
            new.set_password(password)
            detail = f"valid {_shown(card.valid_from)} to {_shown(card.valid_to)}"
            return _created(record, key, new, card.fingerprint_sha256, detail)
        if registered.user_id != user.pk or registered.serial.upper() != card.serial.upper():
            raise _Refused(
                f"fingerprint {card.fingerprint_sha256} is already registered to card "
                f"{registered.serial} of {registered.user.login_id}"
            )
        values = {"valid_from": card.valid_from, "valid_to": card.valid_to}
        row = _changed(record, key, registered, values, card.fingerprint_sha256)
        if password and not registered.check_password(password):
            registered.set_password(password)
            row.action = Action.UPDATE
            row.fields += ("password_hash",)
            row.detail = "; ".join(filter(None, [row.detail, "card password changed"]))
        if registered.revoked_at is not None:
            row.detail = "; ".join(filter(None, [row.detail, "the card stays revoked"]))
        return row

    return [
        card
        if isinstance(card, Row)
        else _checked(record, _card_key(record, card), partial(check, record, card))
        for record, card in zip(records, described, strict=True)
    ]


def _card_key(record: Record, card: _Card | None = None) -> str:
    serial = card.serial if card else record.get("serial")
    return f"{record.get('login_id')} card {serial}" if serial else record.get("login_id")


# Running an import -----------------------------------------------------------------------


def _checked(record: Record, key: str, check: Callable[[], Row]) -> Row:
    """Return the row `check` makes of the record, or the row that says why it is refused."""
    try:
        if record.problem:
            raise _Refused(record.problem)
        return check()
    except _Refused as refusal:
        return Row(record.line, key, Action.REFUSED, str(refusal))


def _refuse_repeats(rows: list[Row]) -> None:
    """Refuse every row about something another row of the file is about too."""
    lines: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        if row.action != Action.REFUSED and row.identity:
            lines[row.identity].append(row.line)
    for row in rows:
        where = lines.get(row.identity, [])
        if row.action != Action.REFUSED and len(where) > 1:
            row.action = Action.REFUSED
            row.detail = f"{row.key} is on lines {', '.join(str(line) for line in where)}"


def _save(model: type[models.Model], rows: list[Row]) -> None:
    """Write the rows' instances: the queries do not grow with the number of rows."""
    model._default_manager.bulk_create(
        [row.instance for row in rows if row.action == Action.CREATE and row.instance]
    )
    updates = sorted((row for row in rows if row.action == Action.UPDATE), key=lambda r: r.fields)
    for fields, group in groupby(updates, key=lambda row: row.fields):
        model._default_manager.bulk_update([row.instance for row in group if row.instance], fields)


@dataclasses.dataclass(frozen=True)
class _Kind:
    noun: str
    model: type[models.Model]
    required: tuple[str, ...]
    optional: tuple[str, ...]
    plan: Callable[[list[Record], Path], list[Row]]
    required_any: tuple[str, ...] = ()


PARTICIPANTS = _Kind(
    noun="participants",
    model=Participant,
    required=("participant_id", "name", "kind", "terminal"),
    optional=("single_da_allowed",),
    plan=_plan_participants,
)
USERS = _Kind(
    noun="users",
    model=User,
    required=("login_id", "participant_id", "name", "role", "da_duty"),
    optional=("email", "scope_online", "scope_reports"),
    plan=_plan_users,
)
SMARTCARDS = _Kind(
    noun="smartcards",
    model=Smartcard,
    required=("login_id", "card_password"),
    optional=("serial", "certificate", "fingerprint_sha256", "valid_from", "valid_to"),
    required_any=("certificate", "fingerprint_sha256"),
    plan=_plan_smartcards,
)


def _import(kind: _Kind, path: Path, *, dry_run: bool) -> Report:
    records = read_records(
        path, required=kind.required, optional=kind.optional, required_any=kind.required_any
    )
    with transaction.atomic():
        rows = kind.plan(records, path.resolve().parent)
        _refuse_repeats(rows)
        report = Report(kind.noun, rows, dry_run=dry_run)
        if not report.refused and not dry_run:
            _save(kind.model, rows)
            report.applied = True
    return report


def participants_import(*, path: Path, dry_run: bool = False) -> Report:
    """Create or update the participants of a CSV file, all or none."""
    return _import(PARTICIPANTS, path, dry_run=dry_run)


def users_import(*, path: Path, dry_run: bool = False) -> Report:
    """Create or update the users of a CSV file, all or none."""
    return _import(USERS, path, dry_run=dry_run)


def smartcards_import(*, path: Path, dry_run: bool = False) -> Report:
    """Register or update the smartcards of a CSV file, all or none."""
    return _import(SMARTCARDS, path, dry_run=dry_run)


# One card's password ---------------------------------------------------------------------


def smartcard_for_key(key: str) -> Smartcard:
    """Return the one card with this SHA-256 fingerprint, or else with this serial number."""
    key = key.strip()
    fingerprint = key.replace(":", "").lower()
    cards = list(
        Smartcard.objects.select_related("user").filter(
            Q(fingerprint_sha256=fingerprint) | Q(serial__iexact=key)
        )
    )
    for card in cards:
        if card.fingerprint_sha256 == fingerprint:
            return card
    if not cards:
        raise ProvisioningError(f"no smartcard has the serial number or fingerprint {key}")
    if len(cards) > 1:
        raise ProvisioningError(
            f"{len(cards)} smartcards have the serial number {key} "
            f"({', '.join(card.user.login_id for card in cards)}); give the fingerprint instead"
        )
    return cards[0]


@transaction.atomic
def smartcard_password_set(*, card: Smartcard, password: str) -> None:
    """Set a card's smartcard password."""
    if not password:
        raise ProvisioningError("the smartcard password is empty")
    card.set_password(password)
    card.save(update_fields=["password_hash"])
