"""Projects own data; instruments push files into exactly one project."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    members: models.ManyToManyField = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A person's role in one project; ``lims.access`` is the only place that reads it.

    Viewers read; editors also write data; managers also manage members, instruments, tokens
    and webhooks. New memberships start as viewers (least privilege).
    """

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        EDITOR = "editor", "Editor"
        MANAGER = "manager", "Manager"

    project = models.ForeignKey(Project, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project}"


class Instrument(models.Model):
    class Kind(models.TextChoices):
        CYCLER = "cycler", "Cycler"
        POTENTIOSTAT = "potentiostat", "Potentiostat"
        ALD_TOOL = "ald_tool", "ALD tool"
        FURNACE = "furnace", "Furnace"
        OTHER = "other", "Other"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OTHER)
    vendor = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    serial = models.CharField(max_length=100, blank=True)
    location = models.CharField(max_length=200, blank=True)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="instruments")
    last_file_at = models.DateTimeField(null=True, blank=True)

    # bookkeeping the ingestion path updates with every file: not a change anyone made
    change_log_volatile = ("last_file_at",)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def _new_key() -> str:
    return secrets.token_hex(20)


class InstrumentToken(models.Model):
    """An API key that may only ingest files for its instrument's project."""

    key = models.CharField(max_length=40, unique=True, default=_new_key)
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="tokens")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)
    # the person answerable for what the instrument sends: named in the change log
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="instrument_tokens",
    )

    # issuing and revoking are logged; the key never is (a keyed fingerprint), nor each use
    change_log_redacted = ("key",)
    change_log_volatile = ("last_used_at",)

    def __str__(self) -> str:
        return f"token #{self.pk} for {self.instrument}"  # never a part of the key (logged)


class WorkerHeartbeat(models.Model):
    """Written by a beat-scheduled task run on a worker: proves broker + worker are alive."""

    hostname = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"
