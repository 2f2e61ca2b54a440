"""English and Traditional Chinese: the language switch, the catalogue, the bilingual emails."""

from __future__ import annotations

import re

import polib
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from authn.activation import activation_send
from authn.otp import email_otp_challenge
from common import i18n
from migration.models import Phase
from tests import factories
from tests.helpers import activation_link

pytestmark = pytest.mark.django_db

# The login labels of the circulars, in English and as HKEX writes them in Chinese.
LABELS = {
    "Login with Smartcard - Online Functions and Overnight Report Download": (
        "以智能卡登入 - 網上功能及隔夜報告下載"
    ),
    "Login with OTP - Online Functions": "以一次性密碼登入 - 網上功能",
    "Login with OTP - Overnight Report Download": "以一次性密碼登入 - 隔夜報告下載",
    "Login with Smartcard - Security Management Functions": "以智能卡登入 - 保安管理功能",
    "Login with OTP - Security Management Functions": "以一次性密碼登入 - 保安管理功能",
}
FUNCTIONS_LABELS = list(LABELS)[:3]
DMS_LABELS = list(LABELS)[3:]

ACTIVATION_SENTENCE = (
    "Two-factor authentication (2FA) replaces smartcard login. Open the link below to set your "
    "password and choose how you receive one-time passwords (an authenticator app or email)."
)
OTP_SENTENCE = (
    "Your one-time password is %(code)s. It is valid for %(minutes)s minutes and works once."
)
OTP_SENTENCE_HTML = (
    "Your one-time password is <strong>%(code)s</strong>. "
    "It is valid for %(minutes)s minutes and works once."
)

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|</?\w+[^>]*>")


@pytest.fixture
def ccass_parallel_run(db):
    return factories.set_phase("CCASS", Phase.PARALLEL_RUN)


def _in_chinese(text: str) -> str:
    with translation.override("zh-hant"):
        return translation.gettext(text)


def _switch_to_chinese(client, next_url: str = "/") -> None:
    response = client.post(reverse("set_language"), {"language": "zh-hant", "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == next_url
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hant"


def _ccass_section(html: str) -> str:
    start = html.index('id="terminal-ccass"')
    return html[start : html.index("</section>", start)]


# The pages ---------------------------------------------------------------------------


def test_landing_switched_to_chinese_shows_the_chinese_login_labels(client, ccass_parallel_run):
    _switch_to_chinese(client)
    html = client.get(reverse("authn:landing")).content.decode()
    section = _ccass_section(html)
    for english in FUNCTIONS_LABELS:
        assert LABELS[english] in section
        assert english not in section
    assert '<html lang="zh-hant">' in html
    assert "參與者終端機登入" in html
    assert "如中、英文版本的意思有任何歧異，概以英文版本為準" in html


def test_dms_landing_switched_to_chinese_shows_the_chinese_login_labels(client, ccass_parallel_run):
    _switch_to_chinese(client, reverse("authn:dms-landing"))
    section = _ccass_section(client.get(reverse("authn:dms-landing")).content.decode())
    for english in DMS_LABELS:
        assert LABELS[english] in section
        assert english not in section
    for english in FUNCTIONS_LABELS:
        assert LABELS[english] not in section


def test_accept_language_header_chooses_chinese(client, ccass_parallel_run):
    html = client.get(reverse("authn:landing"), HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    section = _ccass_section(html)
    assert "以一次性密碼登入 - 網上功能" in section
    assert "以智能卡登入 - 網上功能及隔夜報告下載" in section


def test_english_is_the_default(client, ccass_parallel_run):
    html = client.get(reverse("authn:landing")).content.decode()
    section = _ccass_section(html)
    for english in FUNCTIONS_LABELS:
        assert english in section
        assert LABELS[english] not in section
    assert '<html lang="en">' in html


def test_switching_back_to_english(client, ccass_parallel_run):
    _switch_to_chinese(client)
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    section = _ccass_section(client.get(reverse("authn:landing")).content.decode())
    assert "Login with OTP - Online Functions" in section


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/dms/",
        "/login/ccass/otp/online/",
        "/login/ccass/otp/dms/",
        "/login/ccass/smartcard/functions/",
        "/activate/",
    ],
)
def test_every_page_has_a_language_switch(client, ccass_parallel_run, url):
    set_language = reverse("set_language")
    html = client.get(url).content.decode()
    assert re.search(rf'<form method="post" action="{re.escape(set_language)}"', html), url
    assert 'name="language" value="zh-hant"' in html and "繁體中文" in html
    assert f'name="next" value="{url}"' in html

    _switch_to_chinese(client, url)
    html = client.get(url).content.decode()
    assert re.search(rf'<form method="post" action="{re.escape(set_language)}"', html), url
    assert 'name="language" value="en"' in html and ">English<" in html


def test_otp_login_page_in_chinese(client, ccass_parallel_run):
    url = reverse("authn:otp-login", kwargs={"terminal": "ccass", "scope": "online"})
    _switch_to_chinese(client, url)
    html = client.get(url).content.decode()
    assert "以一次性密碼登入" in html
    assert "第 1 步（共 2 步）" in html
    assert "登入編號" in html and "密碼" in html
    assert "中央結算系統終端機 · 網上功能" in html


# The catalogue -----------------------------------------------------------------------


def test_catalogue_is_complete_and_compiled():
    assert i18n.catalogues(), "no catalogue under locale/"
    assert i18n.problems() == []


def test_catalogue_header():
    (po_path,) = [p for p in i18n.catalogues() if p.parent.parent.name == "zh_Hant"]
    po = polib.pofile(str(po_path))
    assert po.metadata["Language"] == "zh_Hant"
    assert "charset=UTF-8" in po.metadata["Content-Type"]
    assert po.metadata["Plural-Forms"] == "nplurals=1; plural=0;"
    assert not po.metadata_is_fuzzy


def test_translations_keep_every_placeholder_and_tag():
    for po_path in i18n.catalogues():
        for entry in polib.pofile(str(po_path)).translated_entries():
            translations = entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]
            for translated in translations:
                assert sorted(PLACEHOLDER.findall(entry.msgid)) == sorted(
                    PLACEHOLDER.findall(translated)
                ), entry.msgid


def test_login_labels_read_as_in_the_circulars():
    for english, chinese in LABELS.items():
        assert _in_chinese(english) == chinese


# The emails --------------------------------------------------------------------------


def _html(mail) -> str:
    (alternative,) = mail.alternatives
    content, mimetype = alternative
    assert mimetype == "text/html"
    return content


def _assert_english_then_chinese(text: str, english: str, chinese: str) -> None:
    assert english in text, english
    assert chinese in text, chinese
    assert text.index(english) < text.index(chinese)


@pytest.fixture
def newcomer(ccass_parallel_run):
    return factories.UserFactory(login_id="B10000U31")


def _send_activation(user, django_capture_on_commit_callbacks, mailoutbox):
    with django_capture_on_commit_callbacks(execute=True):
        activation_send(user=user, acting_user=None)
    assert len(mailoutbox) == 1
    return mailoutbox[0]


def test_activation_email_is_english_then_chinese(
    newcomer, django_capture_on_commit_callbacks, mailoutbox
):
    mail = _send_activation(newcomer, django_capture_on_commit_callbacks, mailoutbox)
    chinese = _in_chinese(ACTIVATION_SENTENCE)
    assert chinese != ACTIVATION_SENTENCE and "雙重認證" in chinese

    _assert_english_then_chinese(mail.body, ACTIVATION_SENTENCE, chinese)
    _assert_english_then_chinese(_html(mail), ACTIVATION_SENTENCE, chinese)
    _assert_english_then_chinese(
        mail.body, f"Dear user {newcomer.login_id},", f"致用戶 {newcomer.login_id}："
    )
    english_subject = "Set up two-factor authentication for your terminal login"
    assert mail.subject == f"{english_subject} / {_in_chinese(english_subject)}"
    link = activation_link(mail.body)
    assert mail.body.count(link) == 2 and _html(mail).count(link) == 4


def test_activation_email_is_english_first_whatever_language_is_active(
    newcomer, django_capture_on_commit_callbacks, mailoutbox
):
    with translation.override("zh-hant"):
        mail = _send_activation(newcomer, django_capture_on_commit_callbacks, mailoutbox)
        assert translation.get_language() == "zh-hant"
    _assert_english_then_chinese(mail.body, ACTIVATION_SENTENCE, _in_chinese(ACTIVATION_SENTENCE))
    assert mail.subject.startswith("Set up two-factor authentication")


def test_otp_email_is_english_then_chinese(
    ccass_parallel_run, mailoutbox, django_capture_on_commit_callbacks
):
    device = factories.EmailOTPDeviceFactory(user=factories.UserFactory(login_id="B10000U32"))
    with django_capture_on_commit_callbacks(execute=True):
        email_otp_challenge(device_id=device.pk, request=None)
    (mail,) = mailoutbox
    assert mail.to == [device.user.email]
    code = re.search(r"Your one-time password is (\d{6})\.", mail.body).group(1)
    values = {"code": code, "minutes": settings.OTP_EMAIL_TOKEN_VALIDITY // 60}

    _assert_english_then_chinese(
        mail.body, OTP_SENTENCE % values, _in_chinese(OTP_SENTENCE) % values
    )
    assert f"您的一次性密碼是 {code}" in mail.body
    _assert_english_then_chinese(
        _html(mail), OTP_SENTENCE_HTML % values, _in_chinese(OTP_SENTENCE_HTML) % values
    )
    assert f"<strong>{code}</strong>" in _in_chinese(OTP_SENTENCE_HTML) % values
    assert mail.subject == "Your one-time password / 您的一次性密碼"
