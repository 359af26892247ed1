"""Project roles viewer / editor / manager.

Every existing "member" becomes an editor: before roles were enforced, every member could write,
so editor keeps what they did; managers stay managers. New memberships default to viewer.
"""

from django.db import migrations, models


def members_to_editors(apps, schema_editor):
    Membership = apps.get_model("lims", "Membership")
    Membership.objects.filter(role="member").update(role="editor")


def editors_to_members(apps, schema_editor):
    Membership = apps.get_model("lims", "Membership")
    Membership.objects.exclude(role="manager").update(role="member")


class Migration(migrations.Migration):
    dependencies = [("lims", "0005_raw_file_per_project_bounded_errors")]

    operations = [
        migrations.RunPython(members_to_editors, editors_to_members),
        migrations.AlterField(
            model_name="membership",
            name="role",
            field=models.CharField(
                choices=[("viewer", "Viewer"), ("editor", "Editor"), ("manager", "Manager")],
                default="viewer",
                max_length=20,
            ),
        ),
    ]
