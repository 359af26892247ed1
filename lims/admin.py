"""Admin for every spine model: searchable, filterable; raw files and the change log read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from lims.models import (
    ColumnMapping,
    DeliveryAttempt,
    EventDelivery,
    EventRule,
    IngestionJob,
    Instrument,
    InstrumentToken,
    Membership,
    ObjectChange,
    OutboxEvent,
    Project,
    RawFile,
    Webhook,
    WorkerHeartbeat,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline]


class TokenInline(admin.TabularInline):
    model = InstrumentToken
    extra = 0
    readonly_fields = ["key", "created_at", "last_used_at"]


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "vendor", "model", "project", "last_file_at"]
    list_filter = ["kind", "project"]
    search_fields = ["name", "vendor", "model", "serial"]
    inlines = [TokenInline]


@admin.register(RawFile)
class RawFileAdmin(ReadOnlyAdmin):
    list_display = ["original_name", "sha256", "size", "encoding", "project", "received_at"]
    list_filter = ["project", "encoding"]
    search_fields = ["original_name", "sha256"]


@admin.register(IngestionJob)
class IngestionJobAdmin(admin.ModelAdmin):
    """Jobs change only through the services: the re-run action queues finished jobs and
    running ones whose worker died (lease expired) again; live ones are left alone.

    Never deleted here: a job is the provenance of the tests and records it made (raw file,
    parser, version, who pushed it), jobs are outside the change log, and a delete left no
    trace. Refusing is simpler and safer than a logged delete that still cuts provenance."""

    list_display = [
        "id",
        "raw_file",
        "parser_name",
        "status",
        "progress",
        "attempts",
        "lost_attempts",
        "lease_expires_at",
        "created_at",
    ]
    list_filter = ["status", "kind", "parser_name", "project"]
    search_fields = ["raw_file__original_name", "raw_file__sha256", "error", "leased_by"]
    readonly_fields = [f.name for f in IngestionJob._meta.fields]
    actions = ["rerun"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Re-run selected jobs (finished, or running with an expired lease)")
    def rerun(self, request: HttpRequest, queryset: QuerySet[IngestionJob]) -> None:
        from lims.ingestion.services import job_rerun

        queued, refused = 0, []
        for job in queryset:
            try:
                job_rerun(job=job)
                queued += 1
            except ValidationError as exc:
                refused.append(f"job {job.pk}: {'; '.join(exc.messages)}")
        if queued:
            self.message_user(request, f"{queued} job(s) queued again.", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["topic", "status", "created_at", "dispatched_at"]
    list_filter = ["status", "topic"]
    search_fields = ["topic", "id", "request_id"]


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["name", "url", "enabled", "timeout_s"]
    list_filter = ["enabled"]
    search_fields = ["name", "url"]


@admin.register(EventRule)
class EventRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "topic_pattern", "webhook", "enabled"]
    list_filter = ["enabled", "webhook"]
    search_fields = ["name", "topic_pattern"]


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "at", "status_code", "error", "duration_ms", "response_excerpt"]


@admin.register(EventDelivery)
class EventDeliveryAdmin(admin.ModelAdmin):
    list_display = ["event", "webhook", "status", "attempts", "last_status_code", "updated_at"]
    list_filter = ["status", "webhook"]
    search_fields = ["event__topic", "last_error"]
    readonly_fields = [f.name for f in EventDelivery._meta.fields]
    inlines = [AttemptInline]
    actions = ["resend"]

    @admin.action(description="Send the selected deliveries again")
    def resend(self, request: HttpRequest, queryset: QuerySet[EventDelivery]) -> None:
        from lims.events.replay import delivery_resend

        for delivery in queryset:
            delivery_resend(delivery=delivery, actor=request.user, reason="admin action")
        self.message_user(request, f"{queryset.count()} deliveries queued again")


@admin.register(ObjectChange)
class ObjectChangeAdmin(ReadOnlyAdmin):
    list_display = ["time", "user_name", "context", "action", "content_type", "object_repr"]
    list_filter = ["context", "action", "content_type"]
    search_fields = ["object_repr", "request_id", "user_name"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["hostname", "seen_at"]


@admin.register(ColumnMapping)
class ColumnMappingAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "parser_name", "updated_at"]
    list_filter = ["kind", "parser_name", "project"]
    search_fields = ["name", "description"]
