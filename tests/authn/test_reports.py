"""Overnight Report Download: a firm's files for that firm's users only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests import factories
from tests.helpers import log_in_with_app

pytestmark = pytest.mark.django_db


def test_report_list_shows_only_own_firms_reports(client, user, other_firm):
    mine = factories.ReportFileFactory(participant=user.participant, title="My settlement report")
    factories.ReportFileFactory(participant=other_firm, title="Their settlement report")
    log_in_with_app(client, user, scope="reports")
    page = client.get(reverse("authn:report-list")).content.decode()
    assert "My settlement report" in page
    assert "Their settlement report" not in page
    assert reverse("authn:report-download", args=[mine.pk]) in page


def test_report_downloads_for_own_firm_and_is_audited(client, user):
    report = factories.ReportFileFactory(participant=user.participant)
    log_in_with_app(client, user, scope="reports")
    response = client.get(reverse("authn:report-download", args=[report.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"a,b\n1,2\n"
    assert "attachment" in response["Content-Disposition"]
    assert AuditEvent.objects.filter(user=user, action="report_download").exists()


def test_other_firms_report_is_404(client, user, other_firm):
    theirs = factories.ReportFileFactory(participant=other_firm)
    log_in_with_app(client, user, scope="reports")
    response = client.get(reverse("authn:report-download", args=[theirs.pk]))
    assert response.status_code == 404
    missing = client.get(reverse("authn:report-download", args=[theirs.pk + 1000]))
    assert missing.status_code == 404
    assert response.content == missing.content


def test_report_download_requires_a_reports_session(client, user):
    report = factories.ReportFileFactory(participant=user.participant)
    log_in_with_app(client, user, scope="online")
    response = client.get(reverse("authn:report-download", args=[report.pk]))
    assert response.status_code == 302


def test_report_list_query_count_does_not_grow(client, user, django_assert_max_num_queries):
    log_in_with_app(client, user, scope="reports")
    factories.ReportFileFactory.create_batch(3, participant=user.participant)
    with django_assert_max_num_queries(8) as few:
        client.get(reverse("authn:report-list"))
    factories.ReportFileFactory.create_batch(30, participant=user.participant)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(reverse("authn:report-list"))
