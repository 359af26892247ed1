"""Transactional outbox and webhook deliveries (NetBox event rules, Saleor deliveries)."""

from __future__ import annotations

import secrets
import uuid
from fnmatch import fnmatchcase

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class OutboxEvent(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DISPATCHED = "dispatched", "Dispatched"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    topic = models.CharField(max_length=200, db_index=True)
    payload = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    request_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.topic} {self.id}"


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


class Webhook(models.Model):
    name = models.CharField(max_length=200, unique=True)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=200, default=_new_secret)
    enabled = models.BooleanField(default=True)
    timeout_s = models.FloatField(default=10.0)

    # the change log records a keyed fingerprint of these, never the value (lims.changelog)
    change_log_redacted = ("secret",)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from lims.events.targets import webhook_target_check

        webhook_target_check(self.url)


class EventRule(models.Model):
    """Sends events whose topic matches ``topic_pattern`` (shell-style, e.g. ``cells.*``)."""

    name = models.CharField(max_length=200, unique=True)
    topic_pattern = models.CharField(max_length=200)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="rules")
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.topic_pattern} -> {self.webhook}"

    def matches(self, topic: str) -> bool:
        return fnmatchcase(topic, self.topic_pattern)


class EventDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="deliveries")
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["event", "webhook"], name="delivery_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.event.topic} -> {self.webhook} ({self.status})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(
        EventDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(default=0)
    response_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
