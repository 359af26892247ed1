"""Nothing a client sends outside a file is held unbounded, and no error text is unbounded."""

from __future__ import annotations

import io
import json

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

from lims.ingestion import services
from lims.ingestion.errors import bound_text, quote
from lims.models import IngestionJob, OutboxEvent, RawFile
from tests.lims.test_instrument_scope import _drf_views

FIELD_MAX = settings.LIMS_FORM_FIELD_MAX_BYTES
BODY_MAX = settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _post(client, content: bytes = b"t,v\n1,2\n", name: str = "data.csv", **fields):
    upload = io.BytesIO(content)
    upload.name = name
    return client.post("/api/v1/ingest/", {"file": upload, **fields}, format="multipart")


# --- the ingest form (streaming multipart parser) ---------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["metadata", "cell", "kind"])
def test_an_ingest_field_just_over_its_cap_is_a_413_naming_it(instrument_client, field):
    response = _post(instrument_client, **{field: "x" * (FIELD_MAX + 1)})
    assert response.status_code == 413
    assert response.json()["detail"] == (
        f"form field {field!r} is larger than {FIELD_MAX} bytes; send large content as the file"
    )
    assert RawFile.objects.count() == 0


@pytest.mark.django_db
def test_a_repeated_field_counts_all_its_copies(instrument_client):
    third = "x" * (FIELD_MAX // 3 + 10)
    response = _post(instrument_client, metadata=[third, third, third])
    assert response.status_code == 413 and "'metadata'" in response.json()["detail"]


@pytest.mark.django_db
def test_unknown_fields_and_part_headers_are_capped(instrument_client):
    response = _post(instrument_client, junk="x" * (FIELD_MAX + 1))
    assert response.status_code == 413
    assert "part headers and unknown fields" in response.json()["detail"]
    # a part header line the C parser would buffer whole
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="kind"; x="'
        + b"a" * (2 * 1024 * 1024)
        + b'"\r\n\r\ncycler\r\n--xyz--\r\n'
    )
    response = instrument_client.generic(
        "POST", "/api/v1/ingest/", body, content_type="multipart/form-data; boundary=xyz"
    )
    assert response.status_code == 413
    assert "part headers" in response.json()["detail"]


@pytest.mark.django_db
def test_metadata_at_its_cap_passes_and_is_kept(
    instrument_client, django_capture_on_commit_callbacks
):
    metadata = {"note": "n" * (FIELD_MAX - 20)}
    with django_capture_on_commit_callbacks(execute=False):
        response = _post(instrument_client, metadata=json.dumps(metadata))
    assert response.status_code == 202, response.content
    job = IngestionJob.objects.get(pk=response.json()["job"]["id"])
    assert job.params["metadata"] == metadata


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("metadata", "message"),
    [("[" * 5000 + "]" * 5000, "JSON nested too deeply"), ("[1, 2]", "must be a JSON object")],
)
def test_metadata_must_be_a_reasonable_json_object(instrument_client, metadata, message):
    response = _post(instrument_client, metadata=metadata)
    assert response.status_code == 400
    assert response.json() == {"metadata": [message]}


@pytest.mark.django_db
def test_the_service_refuses_oversized_metadata_before_storing(project):
    metadata = {"note": "n" * FIELD_MAX}
    with pytest.raises(ValidationError) as caught:
        services.ingest_submit(
            stream=io.BytesIO(b"abc"),
            filename="a.csv",
            project=project,
            params={"metadata": metadata},
        )
    assert caught.value.message_dict["metadata"] == [
        f"metadata is {FIELD_MAX + 12} bytes as JSON; at most {FIELD_MAX}"
    ]
    assert RawFile.objects.count() == 0


@pytest.mark.django_db
def test_an_urlencoded_ingest_body_is_capped(instrument_client):
    body = "cell=" + "x" * BODY_MAX
    response = instrument_client.generic(
        "POST", "/api/v1/ingest/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]


# --- every other endpoint (default parsers) and the browser ------------------------------------


def test_every_api_view_parses_with_capped_parsers():
    raw = {JSONParser, FormParser, MultiPartParser}
    uncapped = [
        route
        for route, cls, initkwargs in _drf_views()
        if raw & set(initkwargs.get("parser_classes", cls.parser_classes))
    ]
    assert uncapped == []


@pytest.mark.django_db
def test_a_json_body_over_the_cap_is_a_413_and_a_deep_one_a_400(user_client):
    big = json.dumps({"name": "x" * BODY_MAX})
    response = user_client.generic("POST", "/api/v1/recipes/", big, content_type="application/json")
    assert response.status_code == 413
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]
    deep = "[" * 100_000 + "]" * 100_000
    response = user_client.generic(
        "POST", "/api/v1/recipes/", deep, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "JSON parse error - nested too deeply"


@pytest.mark.django_db
def test_django_multipart_fields_over_the_cap_are_a_413_in_the_api(user_client):
    upload = io.BytesIO(b"code,kind\n")
    upload.name = "rows.csv"
    response = user_client.post(
        "/api/v1/samples/import/",
        {"file": upload, "project": "x" * (BODY_MAX + 1)},
        format="multipart",
    )
    assert response.status_code == 413
    assert "form fields larger than" in response.json()["detail"]


@pytest.mark.django_db
def test_the_browser_upload_says_which_limit_a_field_passed(client, user):
    client.force_login(user)
    upload = io.BytesIO(b"t,v\n1,2\n")
    upload.name = "a.csv"
    response = client.post("/upload/", {"file": upload, "cell": "x" * (BODY_MAX + 1)})
    assert response.status_code == 413
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.content.decode()
    assert RawFile.objects.count() == 0


# --- bounded error texts -----------------------------------------------------------------------


def test_bound_text_keeps_head_and_tail_and_counts_what_it_cut():
    assert bound_text("short", 100) == "short"
    text = "HEAD" + "x" * 12_400_000 + "TAIL"
    bounded = bound_text(text, 4000)
    assert len(bounded) <= 4000
    assert bounded.startswith("HEAD") and bounded.endswith("TAIL")
    head, rest = bounded.split(" [... ", 1)
    cut, tail = rest.split(" chars cut ...] ", 1)
    assert len(head) + int(cut) + len(tail) == len(text)
    assert len(quote("y" * 10_000)) <= 200


@pytest.mark.django_db
def test_a_job_error_quoting_a_huge_field_is_stored_and_served_bounded(
    instrument_client, django_capture_on_commit_callbacks
):
    """The issue's case: a failed job quoted a 12.4 MB field (here 0.5 MB, same path)."""
    value = b"9" * 100 + b"x" * 500_000  # under the 1 MiB line cap, far over the error cap
    content = b"time_s,current_a,voltage_v\n0,1,3.5\n1,1," + value + b"\n2,1,3.6\n"
    with django_capture_on_commit_callbacks(execute=False):
        response = _post(instrument_client, content, "wide.csv")
    assert response.status_code == 202, response.content
    job_id = response.json()["job"]["id"]
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_run(job_id=job_id)
    assert job is not None and job.status == "failed"
    assert job.error.startswith("wide.csv") and "could not parse `9999" in job.error
    assert "chars cut ...]" in job.error
    assert len(job.error) <= 4000
    served = instrument_client.get(f"/api/v1/jobs/{job_id}/")
    assert len(served.content) < 10_000
    event = OutboxEvent.objects.get(topic="lims.job.failed", payload__job=job_id)
    assert event.payload["error"] == job.error


@pytest.mark.django_db
def test_an_api_error_echoing_input_is_bounded(instrument_client):
    response = _post(instrument_client, kind="k" * 50_000)
    assert response.status_code == 400
    assert response.json() == {
        "kind": ["unknown kind; expected one of cycler, eis, ald_log, furnace_log"]
    }


@pytest.mark.django_db
def test_drf_messages_echoing_a_value_are_bounded(user_client):
    """DRF's ``"<value>" is not a valid choice.`` echoes whatever was sent."""
    response = user_client.post(
        "/api/v1/recipes/", {"name": "r", "mode": "m" * 100_000}, format="json"
    )
    assert response.status_code == 400
    message = response.json()["mode"][0]
    assert message.startswith('"mmmm') and message.endswith('" is not a valid choice.')
    assert len(message) <= 1000 and "chars cut ...]" in message
