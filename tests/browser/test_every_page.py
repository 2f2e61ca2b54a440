"""Every page of the portal, at a phone's width and a desktop's, in English and Chinese.

Each page is checked for what a user trips over:

1. the page scrolls sideways (it is wider than the screen);
2. axe-core finds an accessibility violation of impact "serious" or "critical";
3. the Traditional Chinese page shows English words that are not data (login IDs, emails,
   names, codes, numbers, dates) or names that stay English (HKEX, CCASS, OTP, 2FA ...).

The pages are stateful (an activation link is used once, a code step needs a password
step before it), so they are visited once, in order, by one browser context per role and
language, and each page is inspected at both widths before the next. The findings are kept
for the session and each (page, width, language) is its own test, so a failure names them.

axe-core (tests/browser/vendor/axe.min.js, from the npm registry, MPL-2.0) is for these
tests only: the portal never serves it. The portal's policy (`script-src 'self'`) refuses
an inline <script>, which is what Playwright's `add_script_tag(path=...)` adds; so the
file's source is run with `page.evaluate`, which the DevTools protocol runs outside the
page's policy. The pages are thus checked under the policy they are served with.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.core import mail
from django.utils import translation
from django_otp.plugins.otp_totp.models import TOTPDevice

from authn import activation
from dms import bulk, services
from migration.models import Phase
from participants.models import DaDuty, User
from tests import factories
from tests.factories import USER_PASSWORD
from tests.helpers import TOTP, activation_link

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
WIDTHS = (375, 1440)
LANGUAGES = ("en", "zh-hant")
NEW_PASSWORD = "quiet harbour lanterns drift home"
# Set to a folder to keep a full-page screenshot of every page at 375 px (to look at by eye).
SHOTS = os.environ.get("EVERY_PAGE_SCREENSHOTS")

PAGES = (
    "landing",
    "dms-landing",
    "login-password",
    "login-code",
    "smartcard-refused",
    "not-found",
    "csrf-failure",
    "activation",
    "setup-password",
    "setup-channel",
    "setup-verify",
    "setup-done",
    "online-functions",
    "reports",
    "dms-home",
    "dms-users",
    "dms-user-detail",
    "dms-user-create",
    "dms-requests",
    "dms-request-detail",
    "dms-bulk-upload",
    "dms-bulk-detail",
    "dms-audit",
    "logged-out",
    "admin-index",
    "admin-users",
    "admin-audit-events",
    "admin-user-change",
)


@dataclasses.dataclass
class Finding:
    url: str = ""
    scroll_width: int = 0
    inner_width: int = 0
    violations: list[str] = dataclasses.field(default_factory=list)
    untranslated: list[str] = dataclasses.field(default_factory=list)


# (page, width, language) -> what was found there; filled by the first test that needs it.
FINDINGS: dict[tuple[str, int, str], Finding] = {}
# Why the crawl stopped, if it did: the pages after that point have no finding.
CRAWL_ERRORS: list[str] = []
# The seeded data shown on the pages (names, firm names, file names), which stays as typed.
DATA: set[str] = set()


# What is not a translation fault in a Chinese page -----------------------------------------

# Names that stay in English in the Chinese circulars, and abbreviations used as words.
BRANDS = (
    "HKEX",
    "HKSCC",
    "SEOCH",
    "CCASS",
    "CCMS",
    "OTP",
    "2FA",
    "DMS",
    "DA",
    "DAs",
    "CSV",
    "QR",
    "ID",
    "IP",
    "URL",
    "CP",
    "DB",
    "TOTP",
    "HKT",
    "SHA-256",
    "UTF-8",
    "BOM",
    "Cookie",
    # Keys on the keyboard, as Django's own Chinese admin names them.
    "Tab",
    "Control",
    "Command",
    "Mac",
)
# ASCII word boundaries: in 登入ID the letters still stand apart from the Chinese.
ALLOWED = [
    re.compile(r"https?://\S+", re.ASCII),
    re.compile(r"[\w.+-]+@[\w.-]+", re.ASCII),  # an email address
    re.compile(r"[\w*]+\*\*\*@[\w.-]+", re.ASCII),  # a masked one
    re.compile(r"\b[A-Z]\d{5}(?:U|DA)\d+\b", re.ASCII),  # a participant's login ID
    re.compile(r"\b[A-Z]\d{5}\b", re.ASCII),  # a participant ID
    re.compile(r"\bhkex\.[\w.]+", re.ASCII),  # a staff login ID
    re.compile(r"\b(?:[A-Z2-7]{4} ){3,}[A-Z2-7]{1,4}\b", re.ASCII),  # a TOTP key as shown
    re.compile(r"\b[A-Z0-9]{5}-[A-Z0-9]{5}\b", re.ASCII),  # a backup code
    re.compile(
        r"\b[a-z]+(?:_[a-z]+)+\b", re.ASCII
    ),  # a reason code in the audit trail (card_untrusted)
    # Django names each permission in English when it creates it, as data:
    # "participants | user | Can add user" in the admin's list of permissions.
    re.compile(r"^.* \| .* \| Can (?:add|change|delete|view) .+$"),
    re.compile(r"\b(?:a\.m\.|p\.m\.|AM|PM)\b", re.ASCII),  # times, as Django writes them
    re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, BRANDS)) + r")(?![\w-])", re.ASCII),
    re.compile(r"\b[\w-]+\.csv\b", re.ASCII),
]
LETTERS = re.compile(r"[A-Za-z]{2,}")
# Known gaps, left to be fixed elsewhere: django-otp has no Traditional Chinese, so the admin
# shows its app ("Otp_Totp") and model ("TOTP devices") in English. Naming them needs a
# custom AppConfig and a proxy model (settings and authn/admin.py).
KNOWN_ENGLISH = {"Otp_Totp", "TOTP devices", "Otp_Totp 應用程式中的模型"}


def untranslated_texts(texts: list[str]) -> list[str]:
    """Return the texts that still hold English words once data and brand names are taken out."""
    found = []
    for text in texts:
        if text in KNOWN_ENGLISH:
            continue
        rest = text
        for value in sorted(DATA, key=len, reverse=True):
            rest = rest.replace(value, " ")
        for pattern in ALLOWED:
            rest = pattern.sub(" ", rest)
        if LETTERS.search(rest):
            found.append(text)
    return found


# Visible text of a page: text nodes, and the words on buttons and labels a reader announces.
# An element marked with another language (the language switch's "English") is not counted.
TEXTS_JS = """() => {
  const out = [];
  const shown = (el) => el && el.checkVisibility({visibilityProperty: true});
  const other = (el) => { const l = el.closest('[lang]'); return l && !l.lang.startsWith('zh'); };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement, text = n.textContent.trim();
    if (!text || !shown(el) || other(el) || el.closest('script, style, noscript')) continue;
    out.push(text);
  }
  const named = '[aria-label], [placeholder], [title], input[type=submit], input[type=button]';
  for (const el of document.body.querySelectorAll(named)) {
    if (!shown(el) || other(el)) continue;
    for (const name of ['aria-label', 'placeholder', 'title']) {
      if (el.getAttribute(name)) out.push(el.getAttribute(name).trim());
    }
    if (el.matches('input[type=submit], input[type=button]') && el.value) out.push(el.value.trim());
  }
  return out;
}"""

AXE_RUN_JS = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} -> `
      + v.nodes.slice(0, 5).map((n) => n.target.join(' ')).join(' | '));
}"""


# Inspecting a page at both widths -----------------------------------------------------------


class Inspector:
    def __init__(self, language: str) -> None:
        self.language = language
        self.axe_source = AXE.read_text(encoding="utf-8")

    def __call__(self, page: Page, name: str) -> None:
        assert name in PAGES, name
        page.wait_for_load_state("load")
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(self.axe_source + "\n;true")
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            finding = Finding(url=page.url)
            finding.scroll_width, finding.inner_width = page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth]"
            )
            finding.violations = page.evaluate(AXE_RUN_JS)
            if self.language != "en":
                finding.untranslated = untranslated_texts(page.evaluate(TEXTS_JS))
            if SHOTS and width == WIDTHS[0]:
                shot = Path(SHOTS) / f"{name}-{self.language}-{width}.png"
                page.screenshot(path=shot, full_page=True)
            FINDINGS[(name, width, self.language)] = finding
        page.set_viewport_size({"width": WIDTHS[-1], "height": 900})


def gettext_in(language: str) -> Callable[[str], str]:
    """What the page says for an English message in `language` (the portal's own catalog)."""

    def say(message: str) -> str:
        with translation.override(language):
            return translation.gettext(message)

    return say


def field(page: Page, label: str):
    """The input labelled `label`, with the colon (English or full-width) Django may add."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}\s*[:：]?$"))


def new_context(browser: Browser, base: str, language: str) -> BrowserContext:
    context = browser.new_context(
        locale="zh-HK" if language == "zh-hant" else "en-GB",
        timezone_id="Asia/Hong_Kong",
        viewport={"width": WIDTHS[-1], "height": 900},
    )
    context.set_default_timeout(10_000)
    context.set_default_navigation_timeout(15_000)
    context.add_cookies([{"name": "django_language", "value": language, "url": base}])
    return context


def otp_log_in(page: Page, base: str, path: str, user: User, password: str, language: str):
    """Take the password step of the login at `path`, up to the code step."""
    say = gettext_in(language)
    page.goto(f"{base}{path}")
    field(page, say("Login ID")).fill(user.login_id)
    field(page, say("Password")).fill(password)
    page.get_by_role("button", name=say("Continue")).click()
    page.wait_for_url(re.compile(r"/verify/$"))


def enter_code(page: Page, user: User, language: str) -> None:
    """Take the code step with the user's authenticator app."""
    say = gettext_in(language)
    field(page, say("Code")).fill(TOTP().code(TOTPDevice.objects.get(user=user, confirmed=True)))
    page.get_by_role("button", name=say("Log in")).click()
    page.wait_for_url(lambda url: "/verify/" not in url)


# The crawl ---------------------------------------------------------------------------------


def _seed(language: str) -> dict[str, Any]:
    """The people and objects one language's crawl needs (each login uses its own users)."""
    n = LANGUAGES.index(language) + 1
    firm = factories.ParticipantFactory(
        participant_id=f"B4000{n}", name=f"Harbour View Brokers Limited {n}"
    )

    def person(login_id: str, name: str, **extra: Any) -> User:
        DATA.add(name)
        factory = factories.DAFactory if "DA" in login_id else factories.UserFactory
        return factory(participant=firm, login_id=login_id, name=name, **extra)

    maker = person(f"B4000{n}DA1", "Chan Tai Man", da_duty=DaDuty.MAKER)
    person(f"B4000{n}DA2", "Lee Siu Ming", da_duty=DaDuty.CHECKER)
    newcomer = person(f"B4000{n}U01", "Wong Ka Yan")
    reader = person(f"B4000{n}U02", "Ho Wing Sze", scope_reports=True)
    target = person(f"B4000{n}U03", "Cheung Mei Ling")
    person(f"B4000{n}U04", "Lam Chi Keung", email="")
    staff = factories.StaffFactory(login_id=f"hkex.staff{n}", name="Ng Ka Ho")
    DATA.update({firm.name, "Ng Ka Ho"})
    for somebody in (maker, reader, staff):
        factories.TOTPDeviceFactory(user=somebody)
    report = factories.ReportFileFactory(participant=firm)
    DATA.add(report.title)

    change = services.request_make(
        kind="email_register",
        acting_user=maker,
        target=target,
        payload={"email": "cheung.ml@harbour.example"},
    )
    DATA.add("not-an-email")  # a refused row of the file, shown as it was typed
    batch = bulk.bulk_upload(
        acting_user=maker,
        filename="emails.csv",
        raw=(
            f"login id,email\nB4000{n}U04,lam@harbour.example\nB4000{n}U01,not-an-email\n"
        ).encode(),
    )
    batch.refresh_from_db()
    mail.outbox.clear()
    activation.activation_send(user=newcomer, acting_user=None)
    [message] = [m for m in mail.outbox if m.to == [newcomer.email]]
    return {
        "maker": maker,
        "newcomer": newcomer,
        "reader": reader,
        "target": target,
        "staff": staff,
        "change": change,
        "batch": batch,
        "link": activation_link(message.body),
    }


def _anonymous(page: Page, base: str, seed: dict, inspect: Inspector, language: str) -> None:
    for name, path in (
        ("landing", "/"),
        ("dms-landing", "/dms/"),
        ("login-password", "/login/ccass/otp/online/"),
        ("smartcard-refused", "/login/ccass/smartcard/functions/"),
        ("not-found", "/no-such-page/"),
    ):
        page.goto(f"{base}{path}")
        inspect(page, name)
    # A form whose CSRF token was lost (an old tab, a proxy) gets the portal's 403 page.
    page.goto(f"{base}/")
    page.locator("form.lang-switch input[name=csrfmiddlewaretoken]").evaluate(
        "input => { input.value = 'x'.repeat(64); }"
    )
    page.locator("form.lang-switch").get_by_role("button").click()
    page.wait_for_load_state("load")
    inspect(page, "csrf-failure")


def _participant(page: Page, base: str, seed: dict, inspect: Inspector, language: str) -> None:
    say = gettext_in(language)
    page.goto(seed["link"])
    page.get_by_role("button", name=say("Begin setup")).wait_for()
    inspect(page, "activation")
    page.get_by_role("button", name=say("Begin setup")).click()
    page.wait_for_url(f"{base}/setup/password/")
    inspect(page, "setup-password")
    field(page, say("New password")).fill(NEW_PASSWORD)
    field(page, say("Repeat the new password")).fill(NEW_PASSWORD)
    page.get_by_role("button", name=say("Continue")).click()
    page.wait_for_url(f"{base}/setup/channel/")
    inspect(page, "setup-channel")
    page.get_by_label(say("An authenticator app on my phone (recommended)")).check()
    page.get_by_role("button", name=say("Continue")).click()
    page.wait_for_url(f"{base}/setup/verify/")
    inspect(page, "setup-verify")
    device = TOTPDevice.objects.get(user=seed["newcomer"])
    field(page, say("Code")).fill(TOTP().code(device))
    page.get_by_role("button", name=say("Confirm")).click()
    page.wait_for_url(f"{base}/setup/done/")
    inspect(page, "setup-done")

    otp_log_in(page, base, "/login/ccass/otp/online/", seed["newcomer"], NEW_PASSWORD, language)
    inspect(page, "login-code")
    enter_code(page, seed["newcomer"], language)
    inspect(page, "online-functions")


def _reader(page: Page, base: str, seed: dict, inspect: Inspector, language: str) -> None:
    otp_log_in(page, base, "/login/ccass/otp/reports/", seed["reader"], USER_PASSWORD, language)
    enter_code(page, seed["reader"], language)
    page.goto(f"{base}/reports/")
    inspect(page, "reports")


def _da(page: Page, base: str, seed: dict, inspect: Inspector, language: str) -> None:
    otp_log_in(page, base, "/login/ccass/otp/dms/", seed["maker"], USER_PASSWORD, language)
    enter_code(page, seed["maker"], language)
    for name, path in (
        ("dms-home", "/dms/home/"),
        ("dms-users", "/dms/users/"),
        ("dms-user-detail", f"/dms/users/{seed['target'].pk}/"),
        ("dms-user-create", "/dms/users/new/"),
        ("dms-requests", "/dms/requests/"),
        ("dms-request-detail", f"/dms/requests/{seed['change'].pk}/"),
        ("dms-bulk-upload", "/dms/bulk/"),
        ("dms-bulk-detail", f"/dms/bulk/{seed['batch'].pk}/"),
        ("dms-audit", "/dms/audit/"),
    ):
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status == 200, (path, response)
        inspect(page, name)
    # The landing page then says so, in the list of messages.
    page.get_by_role("button", name=gettext_in(language)("Log out")).click()
    page.wait_for_url(f"{base}/dms/")
    inspect(page, "logged-out")


def _staff(page: Page, base: str, seed: dict, inspect: Inspector, language: str) -> None:
    otp_log_in(page, base, "/staff/login/", seed["staff"], USER_PASSWORD, language)
    enter_code(page, seed["staff"], language)
    for name, path in (
        ("admin-index", "/admin/"),
        ("admin-users", "/admin/participants/user/"),
        ("admin-audit-events", "/admin/audit/auditevent/"),
        ("admin-user-change", f"/admin/participants/user/{seed['target'].pk}/change/"),
    ):
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status == 200, (path, response)
        inspect(page, name)


def crawl(browser: Browser, base: str) -> None:
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    for language in LANGUAGES:
        seed = _seed(language)
        inspect = Inspector(language)
        for visit in (_anonymous, _participant, _reader, _da, _staff):
            context = new_context(browser, base, language)
            page = context.new_page()
            try:
                visit(page, base, seed, inspect, language)
            except Exception as error:  # the other roles' pages are still worth checking
                CRAWL_ERRORS.append(f"{visit.__name__} in {language} at {page.url}: {error}")
            finally:
                context.close()


@pytest.fixture
def findings(portal, browser: Browser) -> Iterator[dict]:
    """The findings of the one crawl, made by the first test that asks (in its own database)."""
    if not FINDINGS and not CRAWL_ERRORS:
        crawl(browser, portal.url)
    yield FINDINGS


def finding_for(findings: dict, name: str, width: int, language: str) -> Finding:
    found = findings.get((name, width, language))
    assert found is not None, f"{name} was not reached: {CRAWL_ERRORS}"
    return found


CASES = [
    pytest.param(name, width, language, id=f"{name}-{width}-{language}")
    for language in LANGUAGES
    for name in PAGES
    for width in WIDTHS
]


@pytest.mark.parametrize(("name", "width", "language"), CASES)
def test_page_does_not_scroll_sideways(findings, name, width, language):
    finding = finding_for(findings, name, width, language)
    assert finding.scroll_width <= finding.inner_width, (
        f"{name} at {width} px in {language} ({finding.url}) is {finding.scroll_width} px wide"
    )


@pytest.mark.parametrize(("name", "width", "language"), CASES)
def test_page_has_no_serious_accessibility_violation(findings, name, width, language):
    finding = finding_for(findings, name, width, language)
    assert not finding.violations, "\n".join(
        [f"{name} at {width} px in {language} ({finding.url}):", *finding.violations]
    )


@pytest.mark.parametrize(
    ("name", "width", "language"), [case for case in CASES if case.values[2] != "en"]
)
def test_chinese_page_has_no_english_left(findings, name, width, language):
    finding = finding_for(findings, name, width, language)
    assert not finding.untranslated, "\n".join(
        [f"English left on {name} at {width} px in {language} ({finding.url}):"]
        + [repr(text) for text in finding.untranslated]
    )
