"""Terminals, participants (the tenants), their users, smartcards and report files."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, validate_email
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from common.prefix import Folded

if TYPE_CHECKING:
    import datetime as dt


class TerminalCode(models.TextChoices):
    CCASS = "CCASS", _("CCASS Terminal")
    CCMS = "CCMS", _("CCMS Terminal")


# Hotline names are data (participants/migrations/0002_terminals.py); these
# entries put them in the catalogue so that pages show them translated.
HOTLINE_NAMES = [gettext_noop("CCASS Hotline"), gettext_noop("DCASS Hotline")]


class Terminal(models.Model):
    """A participant terminal and the clearing house that operates it."""

    code = models.CharField(_("code"), max_length=8, choices=TerminalCode.choices, unique=True)
    operator = models.CharField(_("operator"), max_length=16, help_text=_("HKSCC or SEOCH"))
    operator_name = models.CharField(_("operator name"), max_length=200)
    hotline_name = models.CharField(_("hotline name"), max_length=64)
    hotline = models.CharField(_("hotline"), max_length=32)
    enquiry_email = models.EmailField(_("enquiry email"))

    class Meta:
        ordering = ["code"]
        verbose_name = _("terminal")
        verbose_name_plural = _("terminals")

    def __str__(self) -> str:
        return self.get_code_display()

    @property
    def slug(self) -> str:
        return self.code.lower()


class ParticipantKind(models.TextChoices):
    CP = "CP", _("Clearing/CCASS Participant")
    DB = "DB", _("Designated Bank")


class Participant(models.Model):
    """A firm using a terminal: the tenant everything a DA sees is scoped to."""

    participant_id = models.CharField(
        _("participant ID"),
        max_length=6,
        unique=True,
        validators=[
            RegexValidator(r"^[A-Z]\d{5}$", _("Use a letter and five digits, e.g. B01234."))
        ],
    )
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=2, choices=ParticipantKind.choices)
    terminal = models.ForeignKey(
        Terminal, on_delete=models.PROTECT, related_name="participants", verbose_name=_("terminal")
    )
    single_da_allowed = models.BooleanField(
        _("single DA may make and check"),
        default=False,
        help_text=_("Staff allow a sole proprietor's only DA to approve their own requests."),
    )

    class Meta:
        ordering = ["participant_id"]
        verbose_name = _("participant")
        verbose_name_plural = _("participants")

    def __str__(self) -> str:
        return f"{self.participant_id} {self.name}"


class Role(models.TextChoices):
    USER = "user", _("User")
    DA = "da", _("Delegated Administrator")


class DaDuty(models.TextChoices):
    MAKER = "maker", _("Maker")
    CHECKER = "checker", _("Checker")
    BOTH = "both", _("Maker and checker")


class UserStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")


class Scope(models.TextChoices):
    """What a login is for; a session is bound to the scope it logged in for."""

    ONLINE = "online", _("Online Functions")
    REPORTS = "reports", _("Overnight Report Download")
    DMS = "dms", _("Security Management Functions")
    STAFF = "staff", _("Exchange staff administration")


class LoginMethod(models.TextChoices):
    """How a login proved who it was: recorded on the session, the user and the audit trail."""

    OTP = "otp", _("Password and one-time password")
    BACKUP_CODE = "backup_code", _("Password and backup code")
    SMARTCARD = "smartcard", _("Smartcard")
    SMARTCARD_DEMO = "smartcard_demo", _("Smartcard (demo card)")
    # The first step of an OTP login, audited when it is refused.
    PASSWORD = "password", _("Password")

    @classmethod
    def label_of(cls, value: str) -> str:
        """Return the label of a recorded method; an unknown one as it was recorded."""
        return str(cls(value).label) if value in cls.values else value


# Login IDs are ASCII. Anything else is refused before it is looked up: Unicode case mapping
# differs between Python and the database (the dotless ı upper-cases to I in both, but
# case-folds to itself in Python), so a non-ASCII variant of an ID could be matched by the
# database while the login throttle counted it as another ID.
LOGIN_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
LOGIN_ID_MESSAGE = _(
    "A login ID is made of the letters A-Z, digits, dots, dashes and underscores, "
    "up to 32 characters."
)


def normalize_login_id(value: str) -> str | None:
    """Return the login ID as it is looked up and throttled (ASCII, lower case), or None
    when the value cannot be a login ID."""
    value = value.strip()
    if not LOGIN_ID_RE.fullmatch(value):
        return None
    return value.lower()


def in_firm_namespace(login_id: str, participant: Participant) -> bool:
    """Return whether a new login ID is in the firm's own namespace: its participant ID and more.

    A DA chooses new login IDs only there, so that a clash can only be with the firm's own
    users and never tells a DA that an ID exists at another firm.
    """
    prefix = participant.participant_id.lower()
    normalized = normalize_login_id(login_id)
    return normalized is not None and normalized.startswith(prefix) and normalized != prefix


def validate_login_id(value: str) -> None:
    if normalize_login_id(value) is None:
        raise ValidationError(LOGIN_ID_MESSAGE, code="invalid")


# RFC 5321's limit for an address, and the designated email's column.
EMAIL_MAX_LENGTH = 254


def normalize_email(email: str) -> str:
    """Return a designated email as it is stored, or raise ValidationError if it is not one."""
    email = email.strip()
    if len(email) > EMAIL_MAX_LENGTH:
        # Django's validator allows 320 characters; the column (and SMTP) hold 254.
        raise ValidationError(_("An email address has at most 254 characters."), code="too_long")
    validate_email(email)
    local, _at, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


class UserQuerySet(models.QuerySet["User"]):
    def for_participant(self, participant: Participant) -> UserQuerySet:
        return self.filter(participant=participant)

    def by_login_id(self, login_id: str) -> UserQuerySet:
        """The user with this login ID, whatever its case, through the index on LOWER(login_id).

        `login_id__iexact` would not use it: PostgreSQL compares UPPER() and SQLite LIKE.
        A value that cannot be a login ID matches nobody.
        """
        normalized = normalize_login_id(login_id)
        if normalized is None:
            return self.none()
        return self.alias(login_id_lower=Lower("login_id")).filter(login_id_lower=normalized)


class UserManager(BaseUserManager.from_queryset(UserQuerySet)):  # type: ignore[misc]
    use_in_migrations = True

    def create_user(self, login_id: str, password: str | None = None, **extra: Any) -> User:
        if not login_id:
            raise ValueError("A login ID is required")
        user = self.model(login_id=login_id, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, login_id: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("scope_online", False)
        extra.setdefault("scope_reports", False)
        return self.create_user(login_id, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in: a participant's user or DA, or an exchange staff member."""

    login_id = models.CharField(
        _("login ID"),
        max_length=32,
        unique=True,
        validators=[
            RegexValidator(r"^[A-Za-z0-9._-]+$", _("Letters, digits, dot, dash, underscore."))
        ],
    )
    name = models.CharField(_("name"), max_length=200, blank=True)
    participant = models.ForeignKey(
        Participant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="users",
        verbose_name=_("participant"),
    )
    role = models.CharField(_("role"), max_length=8, choices=Role.choices, default=Role.USER)
    da_duty = models.CharField(_("DA duty"), max_length=8, choices=DaDuty.choices, blank=True)
    scope_online = models.BooleanField(_("Online Functions"), default=True)
    scope_reports = models.BooleanField(_("Overnight Report Download"), default=True)
    scope_dms = models.BooleanField(_("Security Management Functions"), default=False)
    email = models.EmailField(_("designated email"), blank=True)
    email_registered_by = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("email registered by"),
    )
    email_registered_at = models.DateTimeField(_("email registered at"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=UserStatus.choices, default=UserStatus.ACTIVE
    )
    is_staff = models.BooleanField(_("exchange staff"), default=False)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)
    last_login_method = models.CharField(_("last login method"), max_length=16, blank=True)
    two_factor_ready_at = models.DateTimeField(_("2FA set up at"), null=True, blank=True)
    # Readiness counts the users who have logged in with OTP at least once.
    first_otp_login_at = models.DateTimeField(_("first login with OTP at"), null=True, blank=True)
    # Bumped by every change a DA request can make, so that a request made
    # against an older state of the user is refused at approval.
    version = models.PositiveIntegerField(_("version"), default=0)

    objects = UserManager()

    USERNAME_FIELD = "login_id"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["login_id"]
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.CheckConstraint(
                condition=Q(is_staff=True) | Q(participant__isnull=False),
                name="user_participant_or_staff",
            ),
            models.CheckConstraint(
                condition=Q(role="user", da_duty="") | Q(role="da") & ~Q(da_duty=""),
                name="user_da_duty_only_for_da",
            ),
            # One account per login ID whatever its case, and the index every login's
            # lookup uses (User.objects.by_login_id): LOWER(login_id) = the normalised ID.
            models.UniqueConstraint(Lower("login_id"), name="user_login_id_ci_unique"),
        ]
        indexes = [
            models.Index(fields=["participant", "role"], name="user_participant_role_idx"),
            # One firm's users by login ID.
            models.Index(fields=["participant", "login_id"], name="user_participant_login_idx"),
            # The DMS users list (dms.selectors) reads a firm's users in LOWER(login_id) order,
            # byte by byte: these read a page's worth of entries at any depth, one for the
            # whole list (and the login ID prefix search), one for each of the list's filters.
            models.Index(F("participant"), Folded("login_id"), name="user_firm_login_key_idx"),
            *(
                models.Index(F("participant"), Folded("login_id"), condition=condition, name=name)
                for name, condition in (
                    ("user_firm_needs_email_idx", Q(email="")),
                    ("user_firm_not_set_up_idx", Q(two_factor_ready_at__isnull=True)),
                    ("user_firm_suspended_idx", Q(status=UserStatus.SUSPENDED)),
                    ("user_firm_das_idx", Q(role=Role.DA)),
                )
            ),
            # The email prefix search.
            models.Index(F("participant"), Folded("email"), name="user_firm_email_key_idx"),
        ]

    def __str__(self) -> str:
        return self.login_id

    @property
    def is_active(self) -> bool:  # type: ignore[override,misc]
        return self.status == UserStatus.ACTIVE

    @property
    def is_da(self) -> bool:
        return self.role == Role.DA

    @property
    def is_maker(self) -> bool:
        return self.is_da and self.da_duty in (DaDuty.MAKER, DaDuty.BOTH)

    @property
    def is_checker(self) -> bool:
        return self.is_da and self.da_duty in (DaDuty.CHECKER, DaDuty.BOTH)

    def has_registered_email(self) -> bool:
        return bool(self.email)

    def get_last_login_method_display(self) -> str:
        return LoginMethod.label_of(self.last_login_method)

    def has_scope(self, scope: str) -> bool:
        """Return whether this user is entitled to log in for the scope."""
        if scope == Scope.STAFF:
            return self.is_staff
        if self.participant_id is None:
            return False
        if scope == Scope.DMS:
            return self.is_da and self.scope_dms
        return {Scope.ONLINE: self.scope_online, Scope.REPORTS: self.scope_reports}.get(
            Scope(scope), False
        )


class SmartcardQuerySet(models.QuerySet["Smartcard"]):
    def usable(self, now: dt.datetime) -> SmartcardQuerySet:
        return self.filter(revoked_at__isnull=True, valid_from__lte=now, valid_to__gt=now)


class Smartcard(models.Model):
    """The legacy credential: a card certificate bound to a user, and its password."""

    user = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="smartcards", verbose_name=_("user")
    )
    serial = models.CharField(_("serial number"), max_length=64)
    fingerprint_sha256 = models.CharField(
        _("SHA-256 fingerprint"),
        max_length=64,
        unique=True,
        validators=[RegexValidator(r"^[0-9a-f]{64}$", _("64 lower-case hex digits."))],
    )
    valid_from = models.DateTimeField(_("valid from"))
    valid_to = models.DateTimeField(_("valid to"))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    password_hash = models.CharField(_("smartcard password"), max_length=256)

    objects = SmartcardQuerySet.as_manager()

    class Meta:
        ordering = ["user__login_id", "serial"]
        verbose_name = _("smartcard")
        verbose_name_plural = _("smartcards")
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__gt=models.F("valid_from")), name="smartcard_validity_order"
            )
        ]

    def __str__(self) -> str:
        return f"{self.serial} ({self.user})"

    def set_password(self, raw_password: str) -> None:
        self.password_hash = make_password(raw_password)

    def check_password(self, raw_password: str) -> bool:
        return check_password(raw_password, self.password_hash)

    def is_usable(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and self.valid_from <= now < self.valid_to


class ReportFileQuerySet(models.QuerySet["ReportFile"]):
    def for_participant(self, participant: Participant) -> ReportFileQuerySet:
        return self.filter(participant=participant)


def report_upload_to(instance: ReportFile, filename: str) -> str:
    return f"reports/{instance.participant.participant_id}/{filename}"


class ReportFile(models.Model):
    """An overnight report file of one participant, downloadable by its users only."""

    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="reports", verbose_name=_("participant")
    )
    business_date = models.DateField(_("business date"))
    title = models.CharField(_("title"), max_length=200)
    file = models.FileField(_("file"), upload_to=report_upload_to)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    objects = ReportFileQuerySet.as_manager()

    class Meta:
        ordering = ["-business_date", "title"]
        verbose_name = _("report file")
        verbose_name_plural = _("report files")
        indexes = [
            models.Index(
                fields=["participant", "-business_date"], name="report_participant_date_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.participant.participant_id} {self.business_date} {self.title}"

    def get_title_display(self) -> str:
        """Return the title in the active language when it is one of the reports' own titles."""
        return str(REPORT_TITLES.get(self.title, self.title))


# A report's title is data, in English as the clearing system names the report; the titles
# the portal knows are shown in the reader's language, any other as it was stored.
REPORT_TITLES = {
    "Settlement report": _("Settlement report"),
    "Statement of money ledger": _("Statement of money ledger"),
}
