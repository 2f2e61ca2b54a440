from django.apps import AppConfig


class CcassConfig(AppConfig):
    name = "ccass"
    verbose_name = "Portal"
