"""Sniffing: every ALD file is recognised from its content, cycler files never are."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from lims.ingestion.parsing import SNIFF_BYTES
from lims.ingestion.registry import all_parsers, detect_parser
from tests.aldlogs.conftest import (
    CYCLER,
    DATALOG,
    DOSES,
    EVENTLOG,
    EXECUTION,
    RECIPE_CSV,
    SUMMARY,
)

EXPECTED = {
    DATALOG: "labview_datalog",
    DOSES: "labview_doses",
    EXECUTION: "labview_execution_table",
    SUMMARY: "labview_summary",
    EVENTLOG: "controller_eventlog",
    RECIPE_CSV: "controller_recipe",
}
ALD_PARSERS = [p for p in all_parsers() if p.kind == "ald_log"]
CYCLER_FILES = sorted(p for p in CYCLER.rglob("*") if p.is_file())


def test_all_parsers_registered() -> None:
    names = {p.name for p in ALD_PARSERS}
    # the execution array (newer LabVIEW builds) has no fixture: tests/aldlogs/test_labview_variants
    assert names == {*EXPECTED.values(), "generic_ald_log", "labview_execution_array"}


@pytest.mark.parametrize("path", list(EXPECTED), ids=lambda p: EXPECTED[p])
@pytest.mark.parametrize("name", ["original", "upload.bin", "export.csv", "DataLog.txt"])
def test_recognised_from_content(path: Path, name: str) -> None:
    head = path.read_bytes()[:SNIFF_BYTES]
    filename = path.name if name == "original" else name
    parser = detect_parser(head, filename, kind="ald_log")
    assert parser is not None and parser.name == EXPECTED[path]


@pytest.mark.parametrize("path", list(EXPECTED), ids=lambda p: EXPECTED[p])
def test_recognised_in_utf16(path: Path) -> None:
    data = codecs.BOM_UTF16_LE + path.read_bytes().decode("latin-1").encode("utf-16-le")
    parser = detect_parser(data[:SNIFF_BYTES], "upload.bin", kind="ald_log")
    assert parser is not None and parser.name == EXPECTED[path]


@pytest.mark.parametrize("path", CYCLER_FILES, ids=lambda p: p.name)
def test_cycler_files_get_zero_from_every_ald_parser(path: Path) -> None:
    head = path.read_bytes()[:SNIFF_BYTES]
    for parser in ALD_PARSERS:
        assert parser.sniff(head, path.name) == 0.0, parser.name
    assert detect_parser(head, path.name, kind="ald_log") is None


def test_ald_sniffers_do_not_claim_each_others_files() -> None:
    for path, expected in EXPECTED.items():
        head = path.read_bytes()[:SNIFF_BYTES]
        claimed = {p.name for p in ALD_PARSERS if p.sniff(head, path.name) > 0}
        assert claimed == {expected}
