"""Seed the reference processes from depositions/data/process_references.csv (idempotent)."""

from django.db import migrations


def seed(apps, schema_editor):
    from depositions import references

    references.load(model=apps.get_model("depositions", "ProcessReference"))


class Migration(migrations.Migration):
    dependencies = [("depositions", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
