from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("lims", "0007_changelog_hash_chain")]
    # data migrations of other apps save through the live models, whose change log entries
    # need these columns
    run_before = [("depositions", "0002_process_references")]

    operations = [
        migrations.AlterField(
            model_name="objectchange", name="seq", field=models.BigIntegerField(unique=True)
        ),
    ]
