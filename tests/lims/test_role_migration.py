"""The role migration: members of before roles existed become editors, managers stay."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("lims", "0005_raw_file_per_project_bounded_errors")]
AFTER = [("lims", "0006_membership_roles_viewer_editor_manager")]


@pytest.mark.django_db(transaction=True)
def test_existing_members_become_editors():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    User = apps.get_model("auth", "User")
    Project = apps.get_model("lims", "Project")
    Membership = apps.get_model("lims", "Membership")
    project = Project.objects.create(name="Old", slug="old")
    for name, role in (("old-member", "member"), ("old-manager", "manager")):
        Membership.objects.create(
            project=project, user=User.objects.create(username=name), role=role
        )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    roles = dict(apps.get_model("lims", "Membership").objects.values_list("user__username", "role"))
    # back to the latest schema before asserting, so a failure leaves no half-migrated
    # database to the tests after this one
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert roles == {"old-member": "editor", "old-manager": "manager"}
