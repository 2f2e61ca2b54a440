"""Create the two terminals, with the enquiry details of the circulars."""

from django.db import migrations

TERMINALS = [
    {
        "code": "CCASS",
        "operator": "HKSCC",
        "operator_name": "Hong Kong Securities Clearing Company Limited",
        "hotline_name": "CCASS Hotline",
        "hotline": "2979 7111",
        "enquiry_email": "clearingps@hkex.com.hk",
    },
    {
        "code": "CCMS",
        "operator": "SEOCH",
        "operator_name": "The SEHK Options Clearing House Limited",
        "hotline_name": "DCASS Hotline",
        "hotline": "2979 7222",
        "enquiry_email": "clearingpsd@hkex.com.hk",
    },
]


def create_terminals(apps, schema_editor):
    Terminal = apps.get_model("participants", "Terminal")
    for row in TERMINALS:
        Terminal.objects.update_or_create(code=row["code"], defaults=row)


class Migration(migrations.Migration):
    dependencies = [("participants", "0001_initial")]
    operations = [migrations.RunPython(create_terminals, migrations.RunPython.noop)]
