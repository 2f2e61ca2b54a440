"""Give each terminal its migration programme, in preparation."""

from django.db import migrations


def create_programmes(apps, schema_editor):
    Terminal = apps.get_model("participants", "Terminal")
    Programme = apps.get_model("migration", "Programme")
    for terminal in Terminal.objects.all():
        Programme.objects.get_or_create(terminal=terminal)


class Migration(migrations.Migration):
    dependencies = [("migration", "0001_programme"), ("participants", "0002_terminals")]
    operations = [migrations.RunPython(create_programmes, migrations.RunPython.noop)]
