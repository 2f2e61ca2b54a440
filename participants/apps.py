from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ParticipantsConfig(AppConfig):
    name = "participants"
    verbose_name = _("Participants")

    def ready(self) -> None:
        from django.contrib.auth import user_logged_in
        from django.contrib.auth.models import update_last_login

        # authn.login.login_complete writes last_login with the login method.
        user_logged_in.disconnect(update_last_login, dispatch_uid="update_last_login")
