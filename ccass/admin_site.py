"""Django admin behind 2FA: staff reach it only from a session that logged in with OTP."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from two_factor.admin import AdminSiteOTPRequiredMixin

from authn.decorators import session_allows
from participants.models import Scope


class PortalAdminSite(AdminSiteOTPRequiredMixin, admin.AdminSite):
    site_header = _("HKEX Terminal Access Portal")
    site_title = _("Terminal Access Portal")

    def has_permission(self, request: HttpRequest) -> bool:
        # AdminSiteOTPRequiredMixin requires a verified OTP device; the session
        # must also be a staff login, not a participant scope of the same person.
        return super().has_permission(request) and session_allows(request, Scope.STAFF)


def install_otp_admin() -> None:
    admin.site.__class__ = PortalAdminSite
