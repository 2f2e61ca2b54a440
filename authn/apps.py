from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuthnConfig(AppConfig):
    name = "authn"
    verbose_name = _("Authentication")

    def ready(self) -> None:
        from authn.emails import register_emails

        register_emails()
