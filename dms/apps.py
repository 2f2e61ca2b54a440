from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DmsConfig(AppConfig):
    name = "dms"
    verbose_name = _("Security Management Functions")

    def ready(self) -> None:
        from dms.notifications import register_emails

        register_emails()
