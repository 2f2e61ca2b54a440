from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


class MigrationConfig(AppConfig):
    name = "migration"
    verbose_name = _("Migration programme")

    def ready(self) -> None:
        from migration import phases
        from migration.emails import register_emails

        register_emails()
        from migration.models import Programme
        from participants.models import Terminal

        # A change to a terminal or its programme reaches this process's login pages at once.
        for model in (Terminal, Programme):
            for signal in (post_save, post_delete):
                signal.connect(
                    phases.entry_terminals_forget,
                    sender=model,
                    dispatch_uid=f"entry-terminals-forget-{model.__name__}-{signal is post_save}",
                )
