"""The ingestion seam: registry ranking, two-phase handlers, one encoding rule set.

Each test goes through ``ingest_submit`` + ``job_run`` on PostgreSQL where the behaviour is
the pipeline's, and calls the pure toolkit directly where it is a rule.
"""

from __future__ import annotations

import codecs
import io
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from lims.ingestion import registry, text
from lims.ingestion import services as ingest
from lims.ingestion.parsing import ParseContext
from lims.ingestion.registry import IngestOutcome

ROOT = Path(__file__).resolve().parents[2]


class _Fake:
    kind: ClassVar[str] = "eis"
    version: ClassVar[str] = "1.0.0"
    name: ClassVar[str] = "fake"
    score: ClassVar[float] = 0.5
    specificity: ClassVar[int] = 1

    def sniff(self, head: bytes, filename: str) -> float:
        return self.score if head.startswith(b"FAKE") else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> dict[str, Any]:
        return {"bytes": path.stat().st_size}


def _parser(name: str, score: float, specificity: int = 1) -> _Fake:
    cls = type(name, (_Fake,), {"name": name, "score": score, "specificity": specificity})
    return cls()


@pytest.fixture
def isolated_registry(monkeypatch):
    """A registry holding only what the test registers (the real one is restored after)."""
    monkeypatch.setattr(registry, "_PARSERS", {})
    monkeypatch.setattr(registry, "_HANDLERS", {})
    return registry


def test_detection_ranks_by_score_then_specificity_then_name(isolated_registry) -> None:
    generic = _parser("a_generic", 0.5, specificity=0)
    vendor = _parser("z_vendor", 0.5)
    for order in ((generic, vendor), (vendor, generic)):  # registration order must not matter
        isolated_registry._PARSERS.clear()
        isolated_registry.register_parsers(order)
        assert isolated_registry.detect_parser(b"FAKE", "x.txt").name == "z_vendor"
    isolated_registry.register_parser(_parser("b_better", 0.9, specificity=0))
    assert isolated_registry.detect_parser(b"FAKE", "x.txt").name == "b_better"
    twins = (_parser("twin_b", 0.5), _parser("twin_a", 0.5))
    isolated_registry._PARSERS.clear()
    isolated_registry.register_parsers(twins)
    assert isolated_registry.detect_parser(b"FAKE", "x.txt").name == "twin_a"
    assert isolated_registry.detect_parser(b"other", "x.txt") is None


def test_duplicate_parser_names_are_refused(isolated_registry) -> None:
    isolated_registry.register_parser(_parser("same", 0.5))
    with pytest.raises(RuntimeError, match="duplicate parser name"):
        isolated_registry.register_parser(_parser("same", 0.5))


def test_apps_register_their_parsers_and_handlers() -> None:
    names = {parser.name for parser in registry.all_parsers()}
    assert {"biologic_mpr", "neware_nda", "labview_datalog", "controller_eventlog"} <= names
    assert {"cycler", "ald_log"} <= set(registry.handled_kinds())


def _submit(project, payload: bytes, name: str, django_capture_on_commit_callbacks, **kw):
    with django_capture_on_commit_callbacks(execute=False):
        job, _ = ingest.ingest_submit(
            stream=io.BytesIO(payload), filename=name, project=project, **kw
        )
    with django_capture_on_commit_callbacks(execute=False):
        return ingest.job_run(job_id=job.pk)


@pytest.mark.django_db(transaction=True)
def test_prepare_runs_outside_the_transaction_persist_inside(
    project, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    from django.db import connection

    seen: dict[str, bool] = {}

    def prepare(*, job, data):
        seen["prepare_in_atomic"] = connection.in_atomic_block
        return {"n": data["bytes"]}

    def persist(*, job, prepared):
        seen["persist_in_atomic"] = connection.in_atomic_block
        return IngestOutcome(status="succeeded", result={"n": prepared["n"]})

    # A transactional test commits for real, and on_commit would send the job to the suite's
    # worker process, which would race this test's flush (a deadlock seen once): run it here.
    monkeypatch.setattr(ingest, "_dispatch", lambda job_id: None)
    monkeypatch.setitem(registry._PARSERS, "fake_eis", _parser("fake_eis", 0.9))
    monkeypatch.setitem(registry._HANDLERS, "eis", registry.IngestHandler("eis", prepare, persist))
    job = _submit(project, b"FAKE spectrum", "s.txt", django_capture_on_commit_callbacks)
    assert job.status == "succeeded", job.error
    assert seen == {"prepare_in_atomic": False, "persist_in_atomic": True}
    assert job.result["n"] == len(b"FAKE spectrum")
    assert set(job.result["phases_s"]) == {"prepare", "persist"}


@pytest.mark.django_db
def test_a_kind_without_handler_fails_clearly(
    project, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    monkeypatch.setitem(registry._PARSERS, "fake_eis", _parser("fake_eis", 0.9))
    monkeypatch.delitem(registry._HANDLERS, "eis", raising=False)
    job = _submit(project, b"FAKE spectrum 2", "s2.txt", django_capture_on_commit_callbacks)
    assert job.status == "failed"
    assert job.error == "s2.txt: no ingestion handler is registered for 'eis' files"
    assert job.raw_file.size == len(b"FAKE spectrum 2")  # the bytes are kept


@pytest.mark.django_db
def test_a_key_error_inside_a_handler_is_a_crash_with_its_traceback(
    project, monkeypatch, caplog, django_capture_on_commit_callbacks
) -> None:
    def prepare(*, job, data):
        return {}["missing"]

    monkeypatch.setitem(registry._PARSERS, "fake_eis", _parser("fake_eis", 0.9))
    monkeypatch.setitem(
        registry._HANDLERS, "eis", registry.IngestHandler("eis", prepare, lambda **kw: None)
    )
    with caplog.at_level(logging.ERROR, logger="lims.ingestion.services"):
        job = _submit(project, b"FAKE spectrum 3", "s3.txt", django_capture_on_commit_callbacks)
    assert job.status == "failed"
    assert "unexpected KeyError" in job.error
    assert "no ingestion handler" not in job.error
    assert any(record.exc_info for record in caplog.records)


@pytest.mark.django_db
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_a_wide_text_export_without_bom_reads_like_its_utf8_original(
    project, codec, fixture_path, django_capture_on_commit_callbacks
) -> None:
    """Before the one rule set, the store called such a file "binary" and the parser was then
    asked to decode with that name: it failed only in the pipeline."""
    original = (fixture_path / "cycler/arbin/bdtk_arbin_example.csv").read_bytes()
    wide = original.decode("utf-8").encode(codec)
    assert not wide.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE))
    plain = _submit(project, original, "a.csv", django_capture_on_commit_callbacks)
    other = _submit(project, wide, f"a-{codec}.csv", django_capture_on_commit_callbacks)
    assert other.raw_file.encoding == codec
    assert other.status == plain.status, other.error
    assert other.result["cycles"] == plain.result["cycles"]
    assert other.result["rows"] == plain.result["rows"]


_NEWARE_CN = (
    "循环序号,工步序号,工步类型,时间,总时间,电流(mA),电压(V),容量(mAh),能量(mWh),绝对时间\n"
    "1,1,恒流充电,00:00:01,00:00:01,1.000,3.700,0.0003,0.001,2020-01-01 10:00:00\n"
)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("Zeit;Spannung\n1,5;3,7\n".encode("utf-16-le"), "utf-16-le"),
        ("time,voltage\n1,3.7\n".encode("utf-16-be"), "utf-16-be"),
        ("time,voltage\n1,3.7\n".encode("utf-32-le"), "utf-32-le"),
        ("time,voltage\n1,3.7\n".encode("utf-32-be"), "utf-32-be"),
        (codecs.BOM_UTF16_LE + "t\n1\n".encode("utf-16-le"), "utf-16-le"),
        (codecs.BOM_UTF8 + b"t,v\n1,2\n", "utf-8-sig"),
        ("Temp (ºC)\tP\n1\t2\n".encode("cp1252"), "cp1252"),
        (_NEWARE_CN.encode("gb18030"), None),
        (b"plain ascii\n", "utf-8"),
    ],
)
def test_one_encoding_rule_set(payload: bytes, expected: str | None) -> None:
    found = text.detect_encoding(payload)
    if expected is None:  # a CJK page: whichever the detector names must decode it right
        assert payload.decode(found) == _NEWARE_CN
    else:
        assert found == codecs.lookup(expected).name
    assert text.stored_encoding(payload) == found
    assert text.binary_offset(payload) is None


def test_binary_heads_store_no_encoding() -> None:
    assert text.stored_encoding(b"") == ""
    assert text.stored_encoding(b"PK\x03\x04\x14\x00\x00\x00binary zip") == ""
    assert text.known_codec("binary") is None
    assert text.known_codec("latin-1") == "iso8859-1"


def test_unit_labels_split_only_on_units_the_family_knows() -> None:
    assert text.split_label("Current(A)").unit == "A"
    assert text.split_label("Voltage [V]").unit == "V"
    assert text.split_label("Ewe / V").unit == "V"
    assert text.split_label("Mod8/do1").unit is None  # a channel name, not a unit
    assert text.split_label("I/mA", is_unit=lambda u: u == "mA").unit == "mA"


@pytest.mark.parametrize(
    ("module", "must_not_load"),
    [
        ("cells.parsers.biologic", {"depositions", "django"}),
        ("cells.parsers.neware", {"depositions", "django"}),
        ("depositions.aldlogs.parsers.labview", {"cells"}),
        ("lims.ingestion.text", {"cells", "depositions", "django"}),
        ("lims.ingestion.registry", {"cells", "depositions", "django"}),
    ],
)
def test_importing_one_parser_family_loads_no_other(module: str, must_not_load: set[str]) -> None:
    """``python -X importtime`` in a fresh interpreter, as the issue measured it."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert module in loaded
    assert not {name for name in loaded if name.split(".")[0] in must_not_load}
