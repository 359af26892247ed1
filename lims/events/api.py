"""Events, deliveries and webhook replay over the API (staff: webhooks are installation-wide)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from lims.api.permissions import InstrumentScope
from lims.events import replay
from lims.models import EventDelivery, OutboxEvent, Webhook

# installation-wide objects: staff only (the instrument scope kept, as on every view)
STAFF_ONLY = [IsAuthenticated, InstrumentScope, IsAdminUser]


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = OutboxEvent
        fields = ["id", "topic", "payload", "request_id", "status", "created_at", "dispatched_at"]


class DeliverySerializer(serializers.ModelSerializer):
    topic = serializers.CharField(source="event.topic", read_only=True)
    webhook_name = serializers.CharField(source="webhook.name", read_only=True)

    class Meta:
        model = EventDelivery
        fields = [
            "id",
            "event",
            "topic",
            "webhook",
            "webhook_name",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "updated_at",
        ]


class ResendReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True)


class ReplaySerializer(ResendReasonSerializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    topic = serializers.CharField(
        max_length=200, required=False, default="*", help_text="shell pattern, e.g. cells.*"
    )


class ReplayResultSerializer(serializers.Serializer):
    deliveries = serializers.ListField(child=serializers.IntegerField())


class OldestFirst(CursorPagination):
    """A cursor, so a consumer reading the stream while events arrive misses none."""

    ordering = ("created_at", "id")
    page_size = 100


class EventViewSet(viewsets.ReadOnlyModelViewSet):
    """Every event the system emitted, oldest first; ``topic`` filters by prefix."""

    serializer_class = EventSerializer
    permission_classes = STAFF_ONLY
    pagination_class = OldestFirst

    def get_queryset(self) -> QuerySet[OutboxEvent]:
        qs = OutboxEvent.objects.all()
        topic = self.request.query_params.get("topic")
        return qs.filter(topic__startswith=topic) if topic else qs


class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = DeliverySerializer
    permission_classes = STAFF_ONLY
    filterset_fields = ["status", "webhook"]

    def get_queryset(self) -> QuerySet[EventDelivery]:
        return EventDelivery.objects.select_related("event", "webhook").order_by("-created_at")

    @extend_schema(request=ResendReasonSerializer, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, pk: Any = None) -> Response:
        """Send the delivery again (a failed one after its retries ran out, typically)."""
        found = self.get_object()  # a missing delivery is a 404 whatever the body
        body = ResendReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        delivery = replay.delivery_resend(
            delivery=found,
            actor=request.user,
            reason=body.validated_data.get("reason", ""),
        )
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookReplayViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Webhook.objects.all()
    permission_classes = STAFF_ONLY

    class _Hook(serializers.ModelSerializer):
        class Meta:
            model = Webhook
            fields = ["id", "name", "url", "enabled"]

    serializer_class = _Hook

    @extend_schema(request=ReplaySerializer, responses={202: ReplayResultSerializer})
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: Any = None) -> Response:
        """Send the events of [since, until) whose topic matches ``topic`` to this webhook."""
        webhook = self.get_object()  # a missing webhook is a 404 whatever the body
        body = ReplaySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            ids = replay.webhook_replay(
                webhook=webhook,
                since=data["since"],
                until=data["until"],
                topic_pattern=data["topic"],
                actor=request.user,
                reason=data.get("reason", ""),
            )
        except DjangoValidationError as exc:
            raise ValidationError(exc.messages) from exc
        return Response({"deliveries": ids}, status=status.HTTP_202_ACCEPTED)
