from django.urls import path, register_converter

from authn import account_views, functions, views


class ScopeConverter:
    regex = "online|reports|dms"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class TerminalConverter:
    regex = "ccass|ccms"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value.lower()


register_converter(ScopeConverter, "scope")
register_converter(TerminalConverter, "terminal")

app_name = "authn"
urlpatterns = [
    path("", views.landing, name="landing"),
    path("dms/", views.dms_landing, name="dms-landing"),
    path("login/<terminal:terminal>/otp/<scope:scope>/", views.otp_login, name="otp-login"),
    path(
        "login/<terminal:terminal>/otp/<scope:scope>/verify/",
        views.otp_login_verify,
        name="otp-login-verify",
    ),
    path(
        "login/<terminal:terminal>/otp/<scope:scope>/resend/",
        views.otp_login_resend,
        name="otp-login-resend",
    ),
    path(
        "login/<terminal:terminal>/smartcard/<str:entry>/",
        views.smartcard_login,
        name="smartcard-login",
    ),
    path(
        "login/<terminal:terminal>/smartcard/<str:entry>/demo/",
        views.smartcard_demo_login,
        name="smartcard-demo-login",
    ),
    path("staff/login/", views.otp_login, {"scope": "staff"}, name="staff-login"),
    path(
        "staff/login/verify/", views.otp_login_verify, {"scope": "staff"}, name="staff-login-verify"
    ),
    path(
        "staff/login/resend/", views.otp_login_resend, {"scope": "staff"}, name="staff-login-resend"
    ),
    path("logout/", views.logout, name="logout"),
    path("connectivity-test/", views.connectivity_test, name="connectivity-test"),
    path("session/keep-alive/", views.session_keepalive, name="session-keepalive"),
    path("activate/", views.activate, name="activate"),
    path("setup/password/", views.setup_password, name="setup-password"),
    path("setup/channel/", views.setup_channel, name="setup-channel"),
    path("setup/verify/", views.setup_verify, name="setup-verify"),
    path("setup/resend/", views.setup_resend, name="setup-resend"),
    path("setup/done/", views.setup_done, name="setup-done"),
    path(
        "setup/done/backup-codes.txt",
        views.setup_backup_codes_download,
        name="setup-backup-codes-download",
    ),
    path("setup/done/kept/", views.setup_backup_codes_kept, name="setup-backup-codes-kept"),
    # What a participant's login is for: Online Functions and Overnight Report Download.
    path("online/", functions.online_home, name="online-home"),
    path("reports/", functions.report_list, name="report-list"),
    path("reports/<int:report_id>/download/", functions.report_download, name="report-download"),
    # Account security: a logged-in user changes their own credentials.
    path("account/", account_views.account_home, name="account"),
    path("account/code/", account_views.account_code_send, name="account-code-send"),
    path("account/password/", account_views.account_password, name="account-password"),
    path("account/channel/", account_views.account_channel, name="account-channel"),
    path(
        "account/channel/verify/",
        account_views.account_channel_verify,
        name="account-channel-verify",
    ),
    path(
        "account/channel/resend/",
        account_views.account_channel_resend,
        name="account-channel-resend",
    ),
    path("account/backup-codes/", account_views.account_backup_codes, name="account-backup-codes"),
    path(
        "account/backup-codes/done/",
        account_views.account_backup_codes_done,
        name="account-backup-codes-done",
    ),
    path(
        "account/backup-codes/done/backup-codes.txt",
        account_views.account_backup_codes_download,
        name="account-backup-codes-download",
    ),
    path(
        "account/backup-codes/done/kept/",
        account_views.account_backup_codes_kept,
        name="account-backup-codes-kept",
    ),
]
