"""Every login entry obeys the phase table of PRODUCT.md."""

from __future__ import annotations

import pytest
from django.urls import reverse

from migration.models import Phase
from tests import factories

pytestmark = pytest.mark.django_db

SMARTCARD_FUNCTIONS = "Login with Smartcard - Online Functions and Overnight Report Download"
OTP_ONLINE = "Login with OTP - Online Functions"
OTP_REPORTS = "Login with OTP - Overnight Report Download"
SMARTCARD_DMS = "Login with Smartcard - Security Management Functions"
OTP_DMS = "Login with OTP - Security Management Functions"

# phase -> (smartcard login open, OTP login open)
PHASE_TABLE = {
    Phase.PREPARATION: (True, False),
    Phase.EMAIL_REGISTRATION: (True, False),
    Phase.PARALLEL_RUN: (True, True),
    Phase.TWO_FA_ONLY: (False, True),
    Phase.DECOMMISSIONED: (False, True),
}


def _ccass_section(html: str) -> str:
    start = html.index('id="terminal-ccass"')
    return html[start : html.index("</section>", start)]


@pytest.mark.parametrize("phase", list(Phase))
def test_landing_shows_exactly_the_entries_the_phase_allows(client, phase):
    factories.set_phase("CCASS", phase)
    smartcard, otp = PHASE_TABLE[phase]
    section = _ccass_section(client.get(reverse("authn:landing")).content.decode())
    assert (SMARTCARD_FUNCTIONS in section) is smartcard
    assert (OTP_ONLINE in section) is otp
    assert (OTP_REPORTS in section) is otp
    assert SMARTCARD_DMS not in section and OTP_DMS not in section
    assert "2979 7111" in section and "clearingps@hkex.com.hk" in section


@pytest.mark.parametrize("phase", list(Phase))
def test_dms_landing_shows_exactly_the_entries_the_phase_allows(client, phase):
    factories.set_phase("CCASS", phase)
    smartcard, otp = PHASE_TABLE[phase]
    section = _ccass_section(client.get(reverse("authn:dms-landing")).content.decode())
    assert (SMARTCARD_DMS in section) is smartcard
    assert (OTP_DMS in section) is otp
    assert OTP_ONLINE not in section and SMARTCARD_FUNCTIONS not in section


def test_each_terminal_follows_its_own_programme(client):
    factories.set_phase("CCASS", Phase.TWO_FA_ONLY)
    factories.set_phase("CCMS", Phase.PREPARATION)
    html = client.get(reverse("authn:landing")).content.decode()
    ccms = html[html.index('id="terminal-ccms"') :]
    assert SMARTCARD_FUNCTIONS in ccms and OTP_ONLINE not in ccms
    assert "2979 7222" in ccms
    assert SMARTCARD_FUNCTIONS not in _ccass_section(html)


def test_two_fa_only_tells_card_holders_why_and_what_to_do(client):
    factories.set_phase("CCASS", Phase.TWO_FA_ONLY)
    section = _ccass_section(client.get(reverse("authn:landing")).content.decode())
    assert "Login with smartcard has ended. Use Login with OTP." in section


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("scope", ["online", "reports", "dms"])
def test_otp_login_page_obeys_the_phase(client, phase, scope):
    factories.set_phase("CCASS", phase)
    url = reverse("authn:otp-login", kwargs={"terminal": "ccass", "scope": scope})
    response = client.get(url)
    if PHASE_TABLE[phase][1]:
        assert response.status_code == 200
        assert "Login ID" in response.content.decode()
    else:
        assert response.status_code == 403
        assert "Login with OTP is not open yet" in response.content.decode()


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("entry", ["functions", "dms"])
def test_smartcard_login_page_obeys_the_phase(client, phase, entry):
    factories.set_phase("CCASS", phase)
    url = reverse("authn:smartcard-login", kwargs={"terminal": "ccass", "entry": entry})
    response = client.get(url)
    body = response.content.decode()
    assert response.status_code == 403
    if PHASE_TABLE[phase][0]:
        # Open, but no card was presented through the proxy.
        assert "Smartcard refused" in body
    else:
        assert "Login with smartcard is no longer available" in body
        assert "Use Login with OTP" in body


def test_otp_login_is_refused_before_launch_even_with_valid_credentials(client, user):
    factories.set_phase("CCASS", Phase.EMAIL_REGISTRATION)
    url = reverse("authn:otp-login", kwargs={"terminal": "ccass", "scope": "online"})
    response = client.post(url, {"login_id": user.login_id, "password": factories.USER_PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_planned_launch_date_is_shown_when_otp_is_not_open(client):
    import datetime as dt

    from django.utils import timezone

    when = timezone.make_aware(dt.datetime(2027, 6, 12, 9, 0))
    factories.set_phase("CCASS", Phase.EMAIL_REGISTRATION, planned_launch_at=when)
    url = reverse("authn:otp-login", kwargs={"terminal": "ccass", "scope": "online"})
    assert "12 June 2027" in client.get(url).content.decode()
