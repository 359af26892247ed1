"""Raw files (immutable, content addressed) and the jobs that parse them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.urls import reverse
from django.utils import timezone

from lims.ingestion.errors import bound_text


class RawFile(models.Model):
    """One project's copy of some bytes. The blob is shared (``raw/<sha>``, content addressed);
    the row is per project, so a project never learns of, nor answers with, another's job."""

    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    original_name = models.CharField(max_length=500)
    content_type = models.CharField(max_length=200, blank=True)
    encoding = models.CharField(max_length=50, blank=True)
    storage_path = models.CharField(max_length=500, help_text="Relative to LIMS_STORAGE_DIR")
    project = models.ForeignKey("lims.Project", on_delete=models.PROTECT, related_name="raw_files")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    instrument = models.ForeignKey(
        "lims.Instrument", null=True, blank=True, on_delete=models.SET_NULL
    )
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "sha256"], name="raw_file_unique_per_project"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.sha256[:12]})"


class IngestionJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        NEEDS_LINKING = "needs_linking", "Needs linking"

    raw_file = models.ForeignKey(RawFile, on_delete=models.PROTECT, related_name="jobs")
    parser_name = models.CharField(max_length=100)
    parser_version = models.CharField(max_length=30)
    kind = models.CharField(max_length=30, blank=True)
    project = models.ForeignKey("lims.Project", on_delete=models.PROTECT, related_name="jobs")
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    result = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    instrument = models.ForeignKey(
        "lims.Instrument", null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # last time it was (re)queued: the stuck-job sweep measures from here, not from creation
    queued_at = models.DateTimeField(default=timezone.now, db_index=True)
    # asked to run again while running (new thresholds): queued once more when it finishes
    requeue_requested = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    # A running job is held by one worker process until its lease ends; the worker renews it
    # while it works, so an expired lease means the worker died (lims.services.sweep_stuck).
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    leased_by = models.CharField(
        max_length=200, blank=True, help_text="host:pid:attempt of the worker holding the lease"
    )
    # attempts whose worker died (killed, out of memory): after LIMS_JOB_MAX_LOST, failed
    lost_attempts = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["raw_file", "parser_name", "parser_version"], name="job_unique_parse"
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} {self.parser_name} {self.status}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A message may quote a file's or a client's content: stored (and served) bounded.
        self.error = bound_text(self.error)
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("job-detail", args=[self.pk])


class ColumnMapping(models.Model):
    """A saved column map for files no dedicated parser knows (generic CSV/XLSX, tool logs).

    Chosen at upload with ``metadata={"column_mapping": "<name>"}``; the job keeps a copy of
    the mapping it used, so later edits never change how an old file was read.
    """

    project = models.ForeignKey(
        "lims.Project", on_delete=models.CASCADE, related_name="column_mappings"
    )
    name = models.SlugField(max_length=100)
    kind = models.CharField(max_length=30, default="cycler")
    parser_name = models.CharField(max_length=100, default="generic")
    description = models.TextField(blank=True)
    mapping = models.JSONField(
        help_text='{"columns": {"<raw column>": {"quantity": ..., "unit": ..., "sign": 1}}, '
        '"delimiter": ",", "skip_rows": 0, "decimal": "."}'
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="column_mapping_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.parser_name})"
