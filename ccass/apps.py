from django.apps import AppConfig


class CcassConfig(AppConfig):
    name = "ccass"
    verbose_name = "Portal"

    def ready(self) -> None:
        import os

        from ccass import checks  # noqa: F401 - registers the deployment checks

        # `make run`: the development server's serving process (RUN_MAIN, not the reloader
        # that watches the files) runs the schedule in a thread (ccass/demo_beat.py).
        if os.environ.get("DEMO_BEAT") == "1" and os.environ.get("RUN_MAIN") == "true":
            from ccass import demo_beat

            demo_beat.start()
