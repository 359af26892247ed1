"""Outbox relay and signed webhook deliveries against a real local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from lims.events import services
from lims.models import DeliveryAttempt, EventDelivery, EventRule, OutboxEvent, Webhook


class _Receiver:
    """A loopback HTTP server answering with a scripted list of status codes."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = codes
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"boom")

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[_Receiver] = []

    def make(codes: list[int]) -> _Receiver:
        r = _Receiver(codes)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _rule(url: str, pattern: str = "cells.*") -> Webhook:
    hook = Webhook.objects.create(name="h", url=url, secret="s3cret")
    EventRule.objects.create(name="r", topic_pattern=pattern, webhook=hook)
    return hook


@pytest.mark.django_db
def test_event_is_relayed_to_matching_rules_only(django_capture_on_commit_callbacks, receiver):
    hook = _rule(receiver([]).url, "cells.cell.*")
    with django_capture_on_commit_callbacks(execute=False):
        hit = services.event_emit(topic="cells.cell.created", payload={"cell": "A"})
        miss = services.event_emit(topic="lims.job.created", payload={})
    assert services.event_relay_run(event_id=str(hit.pk)) != []
    assert services.event_relay_run(event_id=str(miss.pk)) == []
    assert EventDelivery.objects.filter(event=hit, webhook=hook).count() == 1
    assert not EventDelivery.objects.filter(event=miss).exists()
    # relaying twice creates nothing more
    assert services.event_relay_run(event_id=str(hit.pk)) == []
    assert OutboxEvent.objects.get(pk=hit.pk).status == "dispatched"


@pytest.mark.django_db
def test_delivery_is_signed_and_retried_after_5xx(django_capture_on_commit_callbacks, receiver):
    r = receiver([503, 200])
    _rule(r.url)
    with django_capture_on_commit_callbacks(execute=False):
        event = services.event_emit(topic="cells.cell.created", payload={"cell": "B"})
        (delivery_id,) = services.event_relay_run(event_id=str(event.pk))
    delay = services.webhook_deliver_attempt(delivery_id=delivery_id)
    assert delay is not None and delay > 0
    assert EventDelivery.objects.get(pk=delivery_id).status == "retrying"
    assert services.webhook_deliver_attempt(delivery_id=delivery_id) is None
    delivery = EventDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "succeeded" and delivery.attempts == 2
    assert list(
        DeliveryAttempt.objects.filter(delivery=delivery).values_list("status_code", flat=True)
    ) == [503, 200]
    headers, body = r.requests[-1]
    stamp = headers["X-Lims-Timestamp"]
    signed = stamp.encode() + b"." + body
    expected = f"t={stamp},v1=" + hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert headers["X-Lims-Signature"] == expected
    assert services.verify_signature("s3cret", body, headers["X-Lims-Signature"])
    assert headers["X-Lims-Event-Id"] == str(event.pk)
    assert json.loads(body)["payload"] == {"cell": "B"}


@pytest.mark.django_db
def test_4xx_is_terminal_and_network_errors_retry(django_capture_on_commit_callbacks, receiver):
    _rule(receiver([404]).url)
    with django_capture_on_commit_callbacks(execute=False):
        event = services.event_emit(topic="cells.cell.created", payload={})
        (delivery_id,) = services.event_relay_run(event_id=str(event.pk))
    assert services.webhook_deliver_attempt(delivery_id=delivery_id) is None
    assert EventDelivery.objects.get(pk=delivery_id).status == "failed"

    dead = Webhook.objects.create(name="dead", url="http://127.0.0.1:9/none", secret="x")
    EventRule.objects.create(name="dead", topic_pattern="*", webhook=dead)
    with django_capture_on_commit_callbacks(execute=False):
        event2 = services.event_emit(topic="lims.job.created", payload={})
        ids = services.event_relay_run(event_id=str(event2.pk))
    (dead_id,) = [i for i in ids if EventDelivery.objects.get(pk=i).webhook_id == dead.pk]
    assert services.webhook_deliver_attempt(delivery_id=dead_id) is not None
    delivery = EventDelivery.objects.get(pk=dead_id)
    assert delivery.status == "retrying" and "ConnectionError" in delivery.last_error


# -- security review finding 7 (issue 12) ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/",
        "http://localhost:6379/",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:5432/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0:8000/",
        "gopher://example.org/",
    ],
)
def test_webhooks_refuse_internal_targets(settings, url):
    from django.core.exceptions import ValidationError

    settings.LIMS_WEBHOOK_ALLOWED_HOSTS = []
    hook = Webhook(name="x", url=url, secret="s")
    with pytest.raises(ValidationError) as error:
        hook.full_clean()
    assert "url" in error.value.message_dict


@pytest.mark.django_db
def test_webhook_allow_list_admits_the_labs_own_receiver(settings):
    settings.LIMS_WEBHOOK_ALLOWED_HOSTS = ["receiver.lab.internal:8080", "127.0.0.1"]
    Webhook(name="a", url="http://127.0.0.1:9000/hook", secret="s").full_clean()
    Webhook(name="b", url="http://receiver.lab.internal:8080/", secret="s").full_clean()


@pytest.mark.django_db
def test_delivery_to_an_internal_target_is_refused_without_a_request(
    settings, django_capture_on_commit_callbacks, receiver
):
    r = receiver([])
    _rule(r.url)  # saved while allowed (or by SQL): checked again at delivery
    settings.LIMS_WEBHOOK_ALLOWED_HOSTS = []
    with django_capture_on_commit_callbacks(execute=False):
        event = services.event_emit(topic="cells.cell.created", payload={})
        (delivery_id,) = services.event_relay_run(event_id=str(event.pk))
    assert services.webhook_deliver_attempt(delivery_id=delivery_id) is None
    delivery = EventDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "failed" and "refused target" in delivery.last_error
    assert r.requests == []


def test_signature_carries_a_timestamp_and_replays_are_refused():
    body = b'{"id": "1"}'
    header = services.sign("k", body, 1_000_000)
    assert services.verify_signature("k", body, header, now=1_000_100)
    assert not services.verify_signature("k", body, header, now=1_000_000 + 301)
    assert not services.verify_signature("k", body + b" ", header, now=1_000_000)
    assert not services.verify_signature("other", body, header, now=1_000_000)
    forged = header.replace("t=1000000", "t=1000290")  # a fresh timestamp on an old signature
    assert not services.verify_signature("k", body, forged, now=1_000_300)


@pytest.mark.django_db
def test_the_webhook_secret_is_not_written_to_the_change_log():
    from lims.models import ObjectChange

    hook = Webhook.objects.create(name="s", url="http://127.0.0.1:1/", secret="top-secret-123")
    hook.secret = "rotated-secret-456"
    hook.save()
    logged = json.dumps(list(ObjectChange.objects.values("prechange", "postchange")), default=str)
    assert "top-secret-123" not in logged and "rotated-secret-456" not in logged
    from django.contrib.contenttypes.models import ContentType

    mine = ObjectChange.objects.filter(
        content_type=ContentType.objects.get_for_model(Webhook), object_id=str(hook.pk)
    )
    first, second = mine.order_by("pk").values_list("postchange", flat=True)
    assert first["secret"].startswith("redacted:") and first["secret"] != second["secret"]
