"""The change log becomes a hash chain; entries already written are chained in (time, id)
order, the order they were shown in."""

import django.utils.timezone
from django.db import migrations, models


def chain_existing(apps, schema_editor):
    from lims.changelog import GENESIS_HASH, HASHED_FIELDS, entry_digest

    ObjectChange = apps.get_model("lims", "ObjectChange")
    prev_hash, batch = GENESIS_HASH, []
    rows = ObjectChange.objects.select_related("content_type").order_by("time", "id")
    for seq, entry in enumerate(rows.iterator(chunk_size=2000), start=1):
        fields = {name: getattr(entry, name) for name in HASHED_FIELDS if name != "content_type"}
        fields["prev_hash"] = prev_hash
        ct = entry.content_type
        entry.seq, entry.prev_hash = seq, prev_hash
        entry.hash = entry_digest({**fields, "content_type": f"{ct.app_label}.{ct.model}"})
        prev_hash = entry.hash
        batch.append(entry)
        if len(batch) >= 2000:
            ObjectChange.objects.bulk_update(batch, ["seq", "prev_hash", "hash"])
            batch = []
    ObjectChange.objects.bulk_update(batch, ["seq", "prev_hash", "hash"])


class Migration(migrations.Migration):
    dependencies = [("lims", "0006_membership_roles_viewer_editor_manager")]
    # data migrations of other apps save through the live models, whose change log entries
    # need these columns
    run_before = [("depositions", "0002_process_references")]

    operations = [
        migrations.AlterField(
            model_name="objectchange",
            name="time",
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="objectchange",
            name="instrument_name",
            field=models.CharField(blank=True, max_length=200, default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="objectchange", name="seq", field=models.BigIntegerField(null=True)
        ),
        migrations.AddField(
            model_name="objectchange",
            name="prev_hash",
            field=models.CharField(max_length=64, default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="objectchange",
            name="hash",
            field=models.CharField(max_length=64, default=""),
            preserve_default=False,
        ),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
    ]
