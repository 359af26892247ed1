"""Furnace logs through the one ingestion path: POST /api/v1/ingest/ (kind=furnace_log,
anneal=<code>), the registered parser, the two-phase handler, the FurnaceLog and its event.

Jobs run in-process here (``job_run``, as the worker calls it); tests/integration runs them in
a real worker process."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from depositions import services
from depositions.furnace import services as furnace
from depositions.furnace.parser import FurnaceCsvParser
from depositions.inputs import SegmentInput
from depositions.models import AnnealSegment, FurnaceLog
from lims.ingestion import services as ingest
from lims.ingestion import storage
from lims.ingestion.parsing import ParseContext
from lims.ingestion.registry import detect_parser
from lims.models import IngestionJob, OutboxEvent, RawFile
from tests.depositions.factories import furnace_csv

pytestmark = pytest.mark.django_db

PLAN = [
    SegmentInput(kind="ramp", target_c=Decimal("600"), rate_k_per_min=Decimal("5")),
    SegmentInput(kind="dwell", target_c=Decimal("600"), duration_min=Decimal("120")),
    SegmentInput(kind="cool", target_c=Decimal("25"), rate_k_per_min=Decimal("5")),
]


@pytest.fixture
def anneal(project):
    return services.post_treatment_create(
        project=project, code="AN-100", atmosphere="o2", segments=PLAN
    )


def _push(client, capture, content: bytes, name: str = "an100.csv", **fields):
    upload = SimpleUploadedFile(name, content, content_type="text/csv")
    with capture(execute=False):
        reply = client.post("/api/v1/ingest/", {"file": upload, **fields}, format="multipart")
    assert reply.status_code in (200, 202), reply.content[:2000]
    return reply


def _run(capture, job_id: int) -> IngestionJob:
    with capture(execute=False):
        job = ingest.job_run(job_id=job_id)
    assert job is not None
    return job


def test_a_furnace_log_pushed_to_the_ingest_endpoint_is_checked_against_the_plan(
    anneal, user_client, django_capture_on_commit_callbacks
):
    reply = _push(
        user_client,
        django_capture_on_commit_callbacks,
        furnace_csv(hold_s=3600),
        kind="furnace_log",
        anneal="AN-100",
        project="assb",
    )
    assert reply.status_code == 202
    job = _run(django_capture_on_commit_callbacks, reply.json()["job"]["id"])
    assert (job.kind, job.parser_name, job.status) == ("furnace_log", "furnace-csv", "succeeded")
    assert job.result["overall"] == "fail" and job.result["anneal"] == "AN-100"
    assert set(job.result["phases_s"]) == {"prepare", "persist"}
    assert [r.split(":")[0] for r in job.result["reasons"]] == [
        "dwell_1_duration",
        "dwell_1_temperature",  # the furnace cooled inside the planned dwell
    ]
    assert "held 3720 s of 7200 s planned" in job.result["reasons"][0]

    log = FurnaceLog.objects.get()
    assert (log.treatment, log.job, log.raw_file) == (anneal, job, job.raw_file)
    assert log.parser_version == f"furnace-csv-{FurnaceCsvParser.version}"
    assert log.tolerance_k == Decimal("5.00")
    assert log.plan == [
        {"kind": "ramp", "target_c": "600.00", "rate_k_per_min": "5.000", "duration_min": None},
        {"kind": "dwell", "target_c": "600.00", "rate_k_per_min": None, "duration_min": "120.000"},
        {"kind": "cool", "target_c": "25.00", "rate_k_per_min": "5.000", "duration_min": None},
    ]
    checks = {c["name"]: c for c in log.checks}
    assert checks["dwell_1_duration"]["status"] == "fail"
    assert checks["dwell_1_duration"]["threshold"] == 7200
    assert checks["dwell_1_temperature"]["status"] == "fail"

    event = OutboxEvent.objects.get(topic="depositions.post_treatment.log_checked")
    assert event.payload["overall"] == "fail" and event.payload["job"] == job.pk
    assert event.payload["raw_sha256"] == job.raw_file.sha256
    assert [c["name"] for c in event.payload["failed_checks"]] == [
        "dwell_1_duration",
        "dwell_1_temperature",
    ]

    listed = user_client.get("/api/v1/post-treatments/AN-100/").json()["furnace_logs"]
    assert [(x["job"], x["overall"]) for x in listed] == [(job.pk, "fail")]


def test_the_anneals_own_upload_action_is_gone(anneal, user_client):
    upload = SimpleUploadedFile("an100.csv", furnace_csv(), content_type="text/csv")
    gone = user_client.post(
        "/api/v1/post-treatments/AN-100/furnace-log/", {"file": upload}, format="multipart"
    )
    assert gone.status_code == 404
    assert not RawFile.objects.exists()


def test_the_kind_is_detected_from_the_content(
    anneal, user_client, django_capture_on_commit_callbacks
):
    reply = _push(user_client, django_capture_on_commit_callbacks, furnace_csv(), anneal="AN-100")
    job = _run(django_capture_on_commit_callbacks, reply.json()["job"]["id"])
    assert (job.kind, job.status, job.result["overall"]) == ("furnace_log", "succeeded", "pass")


def test_no_other_fixture_is_taken_for_a_furnace_log(fixture_path: Path):
    """The furnace parser claims only time + temperature (+ controller) layouts."""
    parser = FurnaceCsvParser()
    files = [p for p in fixture_path.rglob("*") if p.is_file() and p.suffix != ".md"]
    assert len(files) > 15
    claimed = [p.name for p in files if parser.sniff(p.read_bytes()[:65536], p.name) > 0]
    assert claimed == []
    assert parser.sniff(furnace_csv(), "x.bin") == 0.7
    assert parser.sniff(b"Time (s),T1 (C),Pressure (mbar)\n0,25,1e-3\n", "x") == 0.4
    assert parser.sniff(b"Time (s),T1 (C),Valve 1,Current (A)\n0,25,0,1\n", "x") == 0.0
    assert detect_parser(furnace_csv(), "upload.bin").name == "furnace-csv"


def test_without_a_known_anneal_the_log_waits_for_a_link(
    anneal, project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job, _ = ingest.ingest_submit(
            stream=io.BytesIO(furnace_csv()),
            filename="f.csv",
            project=project,
            kind="furnace_log",
            params={"anneal": "AN-999"},
        )
    job = _run(django_capture_on_commit_callbacks, job.pk)
    assert job.status == "needs_linking"
    assert (
        job.result["note"] == "anneal 'AN-999' not found in project ASSB coatings; link it by hand"
    )
    assert job.result["points"] > 0 and not FurnaceLog.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        assert furnace.furnace_log_link(job=job, treatment=anneal) is True
    job = _run(django_capture_on_commit_callbacks, job.pk)
    assert job.status == "succeeded" and FurnaceLog.objects.get().treatment == anneal


def test_a_log_checked_against_one_anneal_is_not_moved_to_another(
    anneal, project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job, _ = furnace.furnace_log_submit(
            treatment=anneal, stream=io.BytesIO(furnace_csv()), filename="f.csv", user=None
        )
    _run(django_capture_on_commit_callbacks, job.pk)
    other = services.post_treatment_create(
        project=project, code="AN-200", atmosphere="ar", segments=PLAN
    )
    with pytest.raises(Exception, match="already checked against anneal AN-100"):
        furnace.furnace_log_link(job=job, treatment=other)
    with django_capture_on_commit_callbacks(execute=False):  # same bytes on the other page
        again, created = furnace.furnace_log_submit(
            treatment=other, stream=io.BytesIO(furnace_csv()), filename="f.csv", user=None
        )
    assert (again, created) == (job, False)
    assert IngestionJob.objects.get(pk=job.pk).status == "succeeded"  # not queued again
    assert FurnaceLog.objects.get().treatment == anneal


@pytest.mark.parametrize("tolerance", ["0", "-3", "wide", "nan"])
def test_a_bad_tolerance_fails_the_job_saying_so(
    anneal, project, tolerance, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job, _ = ingest.ingest_submit(
            stream=io.BytesIO(furnace_csv()),
            filename="f.csv",
            project=project,
            kind="furnace_log",
            params={"anneal": "AN-100", "metadata": {"tolerance_k": tolerance}},
        )
    job = _run(django_capture_on_commit_callbacks, job.pk)
    assert job.status == "failed"
    assert (
        job.error
        == f"f.csv: metadata.tolerance_k: {tolerance!r} is not a temperature band in K > 0"
    )


def test_a_plan_edited_while_the_log_was_prepared_is_the_one_checked(
    anneal, project, django_capture_on_commit_callbacks
):
    """Phase 1 reads the plan outside any transaction; phase 2 checks it is still in force."""
    with django_capture_on_commit_callbacks(execute=False):
        job, _ = furnace.furnace_log_submit(
            treatment=anneal,
            stream=io.BytesIO(furnace_csv(hold_s=3600)),
            filename="f.csv",
            user=None,
        )
    job = IngestionJob.objects.select_related("raw_file").get(pk=job.pk)
    data = FurnaceCsvParser().parse(
        storage.absolute(job.raw_file.storage_path), ParseContext(filename="f.csv")
    )
    prepared = furnace.furnace_log_prepare(job=job, data=data)
    assert furnace.overall_status(prepared.results) == "fail"  # 1 h held of 2 h planned
    AnnealSegment.objects.filter(treatment=anneal, kind="dwell").update(duration_min=60)
    with django_capture_on_commit_callbacks(execute=False):
        outcome = furnace.furnace_log_persist(job=job, prepared=prepared)
    assert outcome.result["overall"] == "pass"
    assert FurnaceLog.objects.get().plan[1]["duration_min"] == "60.000"


def test_a_rerun_checks_the_same_log_again_in_place(
    anneal, project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job, _ = furnace.furnace_log_submit(
            treatment=anneal, stream=io.BytesIO(furnace_csv()), filename="f.csv", user=None
        )
    _run(django_capture_on_commit_callbacks, job.pk)
    first = FurnaceLog.objects.get()
    with django_capture_on_commit_callbacks(execute=False):
        ingest.job_rerun(job=job)
    _run(django_capture_on_commit_callbacks, job.pk)
    assert list(FurnaceLog.objects.values_list("pk", flat=True)) == [first.pk]
    assert OutboxEvent.objects.filter(topic="depositions.post_treatment.log_checked").count() == 2


def test_a_bad_furnace_file_fails_with_file_place_and_cause_and_is_kept(
    anneal, user_client, django_capture_on_commit_callbacks
):
    content = b"Nabertherm export\n\ntime (s),Temperature [\xb0C]\n"  # header, no rows
    reply = _push(
        user_client,
        django_capture_on_commit_callbacks,
        content,
        name="cut.csv",
        kind="furnace_log",
        anneal="AN-100",
    )
    job = _run(django_capture_on_commit_callbacks, reply.json()["job"]["id"])
    assert job.status == "failed"
    assert job.error == "cut.csv at line 4: no data rows under the header"
    raw = RawFile.objects.get()
    assert raw.original_name == "cut.csv"
    assert storage.absolute(raw.storage_path).read_bytes() == content
    assert not FurnaceLog.objects.exists()
