"""Past events sent again: a failed delivery resent, a time range replayed to a webhook, the
event stream read with a cursor; staff only, each action itself an event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from lims.events.services import event_emit
from lims.models import EventDelivery, OutboxEvent, Webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("ops", password="pw-ops-12345")
    client.force_login(admin)
    return client


@pytest.fixture
def history(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        events = [
            event_emit(topic=t, payload={"n": i})
            for i, t in enumerate(
                ["cells.cell.created", "cells.cycling_test.imported", "lims.job.failed"]
            )
        ]
    old = timezone.now() - timedelta(days=2)
    OutboxEvent.objects.filter(pk=events[0].pk).update(created_at=old)
    return events


def test_replay_sends_the_matching_events_of_the_range_again(
    staff_client, history, django_capture_on_commit_callbacks
):
    hook = Webhook.objects.create(name="mended", url="http://receiver.example/hook", secret="s")
    failed = EventDelivery.objects.create(
        event=history[1], webhook=hook, status="failed", attempts=8
    )
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    until = (timezone.now() + timedelta(minutes=1)).isoformat()
    with django_capture_on_commit_callbacks(execute=False) as sent:
        r = staff_client.post(
            f"/api/v1/webhooks/{hook.pk}/replay/",
            {"since": since, "until": until, "topic": "cells.*", "reason": "receiver was down"},
            content_type="application/json",
        )
    assert r.status_code == 202, r.content
    # the old event is outside the range and lims.job.failed does not match: one delivery,
    # the failed row reused with its attempts counted from zero
    assert r.json() == {"deliveries": [failed.pk]}
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("pending", 0)
    assert len(sent) == 2  # the send, and the relay of the replay's own event
    note = OutboxEvent.objects.get(topic="lims.webhook.replayed")
    assert note.payload["by"] == "ops" and note.payload["reason"] == "receiver was down"

    wide = staff_client.post(
        f"/api/v1/webhooks/{hook.pk}/replay/",
        {"since": (timezone.now() - timedelta(days=3)).isoformat(), "until": until},
        content_type="application/json",
    ).json()["deliveries"]
    assert len(wide) == 4  # the three, and the replay note itself
    bad = staff_client.post(
        f"/api/v1/webhooks/{hook.pk}/replay/",
        {"since": until, "until": since},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "ends before it starts" in bad.content.decode()


def test_resend_a_failed_delivery_and_admin_action(staff_client, history):
    hook = Webhook.objects.create(name="h", url="http://receiver.example/hook", secret="s")
    failed = EventDelivery.objects.create(
        event=history[2], webhook=hook, status="failed", attempts=8
    )
    r = staff_client.post(f"/api/v1/deliveries/{failed.pk}/resend/", {"reason": "fixed TLS"})
    assert r.status_code == 202 and r.json()["status"] == "pending"
    assert OutboxEvent.objects.filter(topic="lims.delivery.resent").count() == 1
    EventDelivery.objects.filter(pk=failed.pk).update(status="failed")
    admin = staff_client.post(
        "/admin/lims/eventdelivery/",
        {"action": "resend", "_selected_action": [failed.pk]},
    )
    assert admin.status_code == 302
    failed.refresh_from_db()
    assert failed.status == "pending"
    assert OutboxEvent.objects.filter(topic="lims.delivery.resent").count() == 2


def test_the_event_stream_reads_oldest_first_with_a_cursor(staff_client, history):
    first = staff_client.get("/api/v1/events/?topic=cells.").json()
    topics = [e["topic"] for e in first["results"]]
    assert topics == ["cells.cell.created", "cells.cycling_test.imported"]
    assert first["next"] is None
    # a reader walking the cursor while more events arrive sees each once, in order
    for i in range(150):
        event_emit(topic="cells.cell.updated", payload={"i": i})
    seen, url = [], "/api/v1/events/?topic=cells.cell.updated"
    while url:
        page = staff_client.get(url).json()
        seen += [e["payload"]["i"] for e in page["results"]]
        if len(seen) == 100:
            event_emit(topic="cells.cell.updated", payload={"i": 150})
        url = page["next"]
    assert seen == list(range(151))


def test_events_and_replay_are_staff_only(user_client, history):
    hook = Webhook.objects.create(name="h2", url="http://receiver.example/hook", secret="s")
    assert user_client.get("/api/v1/events/").status_code == 403
    r = user_client.post(
        f"/api/v1/webhooks/{hook.pk}/replay/",
        {"since": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"},
        content_type="application/json",
    )
    assert r.status_code == 403
