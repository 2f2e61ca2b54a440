from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from ccass import health, views
from ccass.admin_site import install_otp_admin
from migration.views import connectivity_results, readiness_dashboard

install_otp_admin()

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Staff's readiness dashboard, behind the admin's login and OTP.
    path(
        "admin/readiness/",
        admin.site.admin_view(readiness_dashboard),
        name="readiness-dashboard",
    ),
    path(
        "admin/connectivity/<int:event_id>/results/",
        admin.site.admin_view(connectivity_results),
        name="connectivity-results",
    ),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("outbox/", views.outbox, name="outbox"),
    path("outbox/<str:name>/", views.outbox_message, name="outbox-message"),
    path("dms/", include("dms.urls")),
    path("", include("authn.urls")),
]

# The portal's own error pages, in its layout and language (ccass/errors.py).
handler400 = "ccass.errors.bad_request"
handler403 = "ccass.errors.permission_denied"
handler404 = "ccass.errors.page_not_found"
handler500 = "ccass.errors.server_error"
