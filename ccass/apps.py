from django.apps import AppConfig


class CcassConfig(AppConfig):
    name = "ccass"
    verbose_name = "Portal"

    def ready(self) -> None:
        from ccass import checks  # noqa: F401 - registers the deployment checks
