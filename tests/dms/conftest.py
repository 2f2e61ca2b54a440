"""The DAs' browsers, logged in for Security Management Functions."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.helpers import log_in_with_app


@pytest.fixture
def maker(client, maker_da):
    """The maker's browser, logged in for Security Management Functions."""
    log_in_with_app(client, maker_da, scope="dms")
    return client


@pytest.fixture
def checker(checker_da):
    """The checker's browser, logged in for Security Management Functions."""
    browser = Client()
    log_in_with_app(browser, checker_da, scope="dms")
    return browser
