"""Change log: who changed what, from where (web/api/ingest/admin/shell), grouped per action.

The rows form a hash chain (``seq``, ``prev_hash``, ``hash``; see ``lims.changelog``) so an
edit, deletion or reordering by someone with database access is found by ``verify_audit``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class ObjectChange(models.Model):
    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        DELETE = "delete", "Deleted"

    class Context(models.TextChoices):
        WEB = "web", "Web"
        API = "api", "API"
        INGEST = "ingest", "Ingestion"
        ADMIN = "admin", "Admin"
        SHELL = "shell", "Shell"

    # set under the chain lock by lims.changelog, so time follows the chain
    time = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    user_name = models.CharField(max_length=150, blank=True)
    context = models.CharField(max_length=10, choices=Context.choices)
    request_id = models.CharField(max_length=64, db_index=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    prechange = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    postchange = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    reason = models.CharField(max_length=500, blank=True)
    # the instrument whose token (or ingest job) made the change; the person is ``user``
    instrument_name = models.CharField(max_length=200, blank=True)
    # position in the chain, the previous entry's hash, and sha256 of this entry's canonical
    # content including ``prev_hash`` (lims.changelog.entry_digest)
    seq = models.BigIntegerField(unique=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-time"]
        indexes = [models.Index(fields=["content_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.action} {self.object_repr}"
