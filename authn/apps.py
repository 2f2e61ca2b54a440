from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuthnConfig(AppConfig):
    name = "authn"
    verbose_name = _("Authentication")

    def ready(self) -> None:
        from authn import rehearsal
        from authn.activation import activations_at_launch
        from authn.emails import register_emails
        from migration.models import MilestoneKind
        from migration.services import milestone_effect_register

        register_emails()
        rehearsal.register_emails()
        # Setup opens at launch: every user with a registered email is invited (PRODUCT.md).
        milestone_effect_register(MilestoneKind.LAUNCH, activations_at_launch)
