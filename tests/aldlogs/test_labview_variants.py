"""Other runs, builds and locales of the LabVIEW ALD program, made here from the real run's text.

The parsers are built for the format, not for the one run we hold: line ends (CRLF, CR CR LF,
an empty line after every row as newer builds write), other column sets and orders, other
modules and units, decimal commas of a German Windows, TRUE/FALSE booleans, stop-flow recipes,
aborted and cut runs, duplicated columns, the newer summary and the execution array. Every
variant is generated from the fixture files in a temporary directory (no new fixture files).
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from depositions.aldlogs.checks import run_checks
from depositions.aldlogs.parsers import labview
from depositions.aldlogs.parsers.labview import (
    merge_labview,
    parse_doses_table,
    parse_execution_table,
    parse_labview_datalog,
    parse_labview_run,
    parse_summary,
)
from depositions.aldlogs.parsers.types import AldLog, ExecutionStep, PulseEvent
from depositions.aldlogs.plans import plan_from_execution_table
from depositions.aldlogs.pulses import detect_pulses, planned_doses
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.registry import get_parser
from tests.aldlogs.conftest import (
    DATALOG,
    DOSES,
    EXECUTION,
    SUMMARY,
    ctx_for,
    labview_recipe,
)

RUN = (DATALOG, DOSES, EXECUTION, SUMMARY)
DEG = "\u00ba"  # LabVIEW's "degree": the ordinal indicator (0xBA in ISO-8859-1)


# --- building variants ---------------------------------------------------------------------------


def _text(path: Path) -> str:
    return path.read_bytes().decode("latin-1")


def _write(tmp_path: Path, name: str, text: str, newline: str = "\n") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("latin-1"))
    return path


@dataclasses.dataclass
class Table:
    """A tab-separated LabVIEW file as title line, header labels and rows of cells."""

    title: str
    labels: list[str]
    rows: list[list[str]]

    @classmethod
    def read(cls, path: Path) -> Table:
        lines = _text(path).split("\n")
        assert lines[-1] == ""
        return cls(lines[0], lines[1].split("\t"), [line.split("\t") for line in lines[2:-1]])

    def at(self, label: str) -> int:
        return self.labels.index(label)

    def values(self, label: str) -> list[str]:
        return [row[self.at(label)] for row in self.rows]

    def rename(self, old: str, new: str) -> None:
        self.labels[self.at(old)] = new

    def drop(self, label: str) -> None:
        i = self.at(label)
        del self.labels[i]
        for row in self.rows:
            del row[i]

    def add(self, label: str, values: Sequence[str]) -> None:
        self.labels.append(label)
        for row, value in zip(self.rows, values, strict=True):
            row.append(value)

    def apply(self, label: str, fn: Callable[[str], str]) -> None:
        i = self.at(label)
        for row in self.rows:
            row[i] = fn(row[i])

    def reorder(self, labels: Sequence[str]) -> None:
        order = [self.at(label) for label in labels]
        self.labels = [self.labels[i] for i in order]
        self.rows = [[row[i] for i in order] for row in self.rows]

    def text(self, *, blank_after_rows: bool = False, end: str = "\n") -> str:
        lines = ["\t".join(self.labels), *("\t".join(row) for row in self.rows)]
        if blank_after_rows:
            return self.title + "\n" + "".join(f"{line}\n\n" for line in lines)
        return self.title + "\n" + "\n".join(lines) + end


def _datalog() -> Table:
    return Table.read(DATALOG)


def _scale(factor: float, offset: float = 0.0, fmt: str = "{:.4f}") -> Callable[[str], str]:
    def convert(cell: str) -> str:
        value = float(cell)
        return cell if math.isnan(value) else fmt.format(value * factor + offset)

    return convert


def _pulses(log: AldLog) -> list[PulseEvent]:
    return sorted(detect_pulses(log), key=lambda p: p.start_s)


def _by_label(pulses: list[PulseEvent]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in pulses:
        out[p.source_label or "?"] = out.get(p.source_label or "?", 0) + 1
    return out


def _run(tmp_path: Path, **texts: str) -> list[Path]:
    """The fixture run with some files replaced: keys datalog, doses, execution, summary."""
    names = dict(zip(("datalog", "doses", "execution", "summary"), RUN, strict=True))
    paths = []
    for key, original in names.items():
        if key in texts:
            paths.append(_write(tmp_path, original.name, texts[key]))
        else:
            paths.append(original)
    return paths


def _assert_same_run(log: AldLog, reference: AldLog) -> None:
    assert log.series.equals(reference.series)
    assert log.channels == reference.channels
    assert log.start_time == reference.start_time
    for key in ("valve_sources", "run_info", "declared_recipe", "doses_table"):
        assert log.metadata.get(key) == reference.metadata.get(key), key
    setpoints = {k: v["value"] for k, v in log.metadata["setpoints"].items()}
    assert setpoints == {k: v["value"] for k, v in reference.metadata["setpoints"].items()}
    assert [p.as_dict() for p in _pulses(log)] == [p.as_dict() for p in _pulses(reference)]


# --- the real run is read as before ------------------------------------------------------------


def test_real_run_results_are_unchanged(labview_log: AldLog) -> None:
    """Values of the real run that the variants below are compared with (parser 1.1.0 reads
    it exactly as 1.0.0 did; run_info gained steps_total_source and messages)."""
    assert labview_log.warnings == []
    info = labview_log.metadata["run_info"]
    assert info["steps_completed"] == info["steps_total"] == 154
    assert info["steps_total_source"] == "summary" and info["messages"] is None
    assert info["complete"] is True and info["end_time"] == "2019-05-24T12:41:59.331"
    assert info["status_text"] == "ALD Process Complete. Data and graphs saved to"
    assert labview_log.metadata["alarms"] == []
    assert labview_log.metadata["companions"] == ["summary", "execution_table", "doses"]
    sources = labview_log.metadata["valve_sources"]
    assert sources["Mod8/do1"]["evidence"].startswith("80 of 80 rising edges")
    assert sources["Mod8/do2"]["evidence"].startswith("70 of 70 rising edges")
    assert labview_log.metadata["precursor_ports"] == {
        "A1": "TMA",
        "B1": "H2O",
        "C2": "MoF6",
        "D2": "H2S",
    }
    assert _by_label(_pulses(labview_log)) == {"TMA": 80, "H2O": 70}
    for name in ("labview_datalog", "labview_execution_table", "labview_doses", "labview_summary"):
        assert get_parser(name).version == labview.VERSION == "1.1.0"


# --- line ends -----------------------------------------------------------------------------------


def test_crlf_run_reads_as_the_original(tmp_path: Path, labview_log: AldLog) -> None:
    paths = [_write(tmp_path, p.name, _text(p), newline="\r\n") for p in RUN]
    assert all(b"\r\n" in p.read_bytes() for p in paths)
    log = parse_labview_run(paths)
    _assert_same_run(log, labview_log)
    assert log.warnings == []


@pytest.mark.parametrize(
    ("style", "newline", "warning"),
    [
        ("empty line after each row", "\n", "empty lines between the data rows"),
        ("empty line after each row, CRLF", "\r\n", "empty lines between the data rows"),
        ("CR CR LF", "\r\r\n", "CR CR LF"),
    ],
)
def test_line_end_styles_of_other_builds(
    tmp_path: Path, labview_log: AldLog, style: str, newline: str, warning: str
) -> None:
    blank = style.startswith("empty")
    texts = {}
    for key, path in zip(("datalog", "doses", "execution"), RUN[:3], strict=True):
        table = Table.read(path)
        texts[key] = table.text(blank_after_rows=blank)
    paths = [
        _write(tmp_path, p.name, texts.get(k, _text(p)), newline=newline)
        for k, p in zip(("datalog", "doses", "execution", "summary"), RUN, strict=True)
    ]
    log = parse_labview_run(paths)
    _assert_same_run(log, labview_log)
    assert any(warning in w for w in log.warnings), log.warnings


def test_empty_line_rows_report_the_lines_of_the_file(tmp_path: Path) -> None:
    table = _datalog()
    table.rows[60], table.rows[61] = table.rows[61], table.rows[60]  # time goes back once
    path = _write(tmp_path, "DataLog.txt", table.text(blank_after_rows=True))
    log = parse_labview_datalog(path, ctx_for(path))
    assert log.series.height == 9449
    back = next(w for w in log.warnings if "backwards" in w)
    line = int(re.search(r"line (\d+)", back).group(1))  # type: ignore[union-attr]
    # title, header, empty, then row i at line 4 + 2 i: the row that went back is row 61
    assert line == 4 + 2 * 61
    assert _text(path).split("\n")[line - 1] == "\t".join(table.rows[61])


# --- other program versions: columns, modules, units ---------------------------------------------

VALVE_NAMES = {
    "FieldPoint modules 5/6": lambda m, b: f"Mod{m - 2}/do{b}",
    "DAQmx lines": lambda m, b: f"cDAQ1Mod{m - 2}/port0/line{b}",
}


@pytest.mark.parametrize("naming", list(VALVE_NAMES))
def test_other_columns_modules_and_order(tmp_path: Path, labview_log: AldLog, naming: str) -> None:
    table = _datalog()
    for k in (3, 4):
        table.drop(f"Thermocouple {k} [{DEG}C]")
    for k in (5, 6, 7, 8):
        table.add(f"Thermocouple {k} [{DEG}C]", table.values(f"Thermocouple {k % 2 + 1} [{DEG}C]"))
    for m in (7, 8):
        for b in range(8):
            table.rename(f"Mod{m}/do{b}", VALVE_NAMES[naming](m, b))
    table.add("RF Power [W]", ["0.0"] * len(table.rows))
    table.add("Plasma", ["0"] * len(table.rows))
    table.reorder(list(reversed(table.labels)))  # Timestamp last, valves first
    assert table.labels[-1] == "Timestamp"
    log = parse_labview_run(_run(tmp_path, datalog=table.text()))

    tma, h2o = VALVE_NAMES[naming](8, 1), VALVE_NAMES[naming](8, 2)
    sources = log.metadata["valve_sources"]
    assert {k: (v["label"], v["port"]) for k, v in sources.items()} == {
        tma: ("TMA", "A1"),
        h2o: ("H2O", "B1"),
    }
    roles = {ch.name: (ch.role, ch.unit) for ch in log.channels}
    assert roles["RF Power"] == ("power", "W") and roles["Plasma"][0] == "other"
    assert {ch.name for ch in log.by_role("temperature")} == {
        f"Thermocouple {k}" for k in (1, 2, 5, 6, 7, 8)
    }
    assert len(log.by_role("valve")) == 16
    assert log.series["Chamber Pressure"].equals(labview_log.series["Chamber Pressure"])
    assert log.series["time_s"].equals(labview_log.series["time_s"])
    assert log.start_time == labview_log.start_time
    pulses, reference = _pulses(log), _pulses(labview_log)
    assert {p.detection for p in pulses} == {"valve_channel"}  # no RF power: no plasma pulse
    assert [(p.source_label, p.start_s, p.width_s, p.peak) for p in pulses] == [
        (p.source_label, p.start_s, p.width_s, p.peak) for p in reference
    ]
    report = run_checks(log, detect_pulses(log), labview_recipe())
    rows = {r.name: r for r in report.results}
    assert rows["pulse_count:TMA"].status == rows["plan_alignment"].status == "pass"


@pytest.mark.parametrize(
    ("unit", "factor", "fmt"),
    [("mbar", 1.33322368, "{:.4f}"), ("mTorr", 1000.0, "{:.1f}"), ("Pa", 133.322368, "{:.2f}")],
)
def test_pressure_gauge_units_and_kelvin(
    tmp_path: Path, labview_log: AldLog, unit: str, factor: float, fmt: str
) -> None:
    table = _datalog()
    for name in ("Chamber Pressure", "Pump Pressure"):
        table.apply(f"{name} [Torr]", _scale(factor, fmt=fmt))
        table.rename(f"{name} [Torr]", f"{name} [{unit}]")
    for k in range(1, 5):
        table.apply(f"Thermocouple {k} [{DEG}C]", _scale(1.0, 273.15, "{:.2f}"))
        table.rename(f"Thermocouple {k} [{DEG}C]", f"Thermocouple {k} [K]")
    log = parse_labview_run(_run(tmp_path, datalog=table.text()))
    chamber = log.channel("Chamber Pressure")
    assert (chamber.unit, chamber.raw_unit) == ("Torr", unit)
    assert log.metadata["units_as_written"]["Thermocouple 1"] == "K"
    diff = (log.series["Chamber Pressure"] - labview_log.series["Chamber Pressure"]).abs().max()
    assert diff < 1e-4
    for k in range(1, 5):
        name = f"Thermocouple {k}"
        assert (log.series[name] - labview_log.series[name]).abs().max() < 1e-9 + 1e-6
    pulses, reference = _pulses(log), _pulses(labview_log)
    assert [(p.source_label, p.start_s, p.width_s) for p in pulses] == [
        (p.source_label, p.start_s, p.width_s) for p in reference
    ]
    assert max(abs(a.peak - b.peak) for a, b in zip(pulses, reference, strict=True)) < 1e-4
    assert not any(p.dead for p in pulses)


def test_unknown_unit_is_kept_as_written_with_a_warning(tmp_path: Path) -> None:
    table = _datalog()
    table.rename("Pump Pressure [Torr]", "Pump Pressure [inHg]")
    path = _write(tmp_path, "DataLog.txt", table.text())
    log = parse_labview_datalog(path, ctx_for(path))
    assert log.channel("Pump Pressure").role == "other"
    assert any("unknown unit 'inHg'" in w for w in log.warnings)


def test_true_false_valves(tmp_path: Path, labview_log: AldLog) -> None:
    table = _datalog()
    for m in (7, 8):
        for b in range(8):
            table.apply(f"Mod{m}/do{b}", lambda v: "TRUE" if v == "1" else "FALSE")
    log = parse_labview_run(_run(tmp_path, datalog=table.text()))
    _assert_same_run(log, labview_log)
    assert "booleans" in log.conventions


def test_duplicated_column_names(tmp_path: Path, datalog_only: AldLog) -> None:
    table = _datalog()
    table.rename(f"Thermocouple 4 [{DEG}C]", f"Thermocouple 3 [{DEG}C]")
    table.rename("Mod8/do0", "Mod8/do1")  # a second column named like the TMA valve
    log = parse_labview_run(_run(tmp_path, datalog=table.text()))
    assert sum("repeats the name" in w for w in log.warnings) == 2
    assert log.series["Thermocouple 3"].equals(datalog_only.series["Thermocouple 3"])
    assert log.series["Thermocouple 3_2"].equals(datalog_only.series["Thermocouple 4"])
    assert log.series["Mod8/do1_2"].equals(datalog_only.series["Mod8/do1"])
    assert log.channel("Mod8/do1_2").physical_channel == "Mod8/do1"
    sources = log.metadata["valve_sources"]
    assert sources["Mod8/do1_2"]["label"] == "TMA" and sources["Mod8/do2"]["label"] == "H2O"
    assert "Mod8/do1" not in sources  # the all-zero column never fired
    assert _by_label(_pulses(log)) == {"TMA": 80, "H2O": 70}


# --- locales -------------------------------------------------------------------------------------

_POINT = re.compile(r"(?<=\d)\.(?=\d)")


def _comma(text: str) -> str:
    return _POINT.sub(",", text)


def test_decimal_comma_locale(tmp_path: Path, labview_log: AldLog) -> None:
    """LabVIEW formats numbers (and the timestamp's fraction) with the system decimal mark: a
    German Windows writes ``1,787`` and ``11:23:14,559 05/24/2019``."""
    summary = "\n".join(
        _comma(line) if line.startswith(("Furnace", "Graph", "Process End")) else line
        for line in _text(SUMMARY).split("\n")
    )
    assert "425,000000" in summary and "11:23:13,990" in summary
    texts = {
        "datalog": _comma(_text(DATALOG)),
        "doses": _comma(_text(DOSES)),
        "execution": _comma(_text(EXECUTION)),
        "summary": summary,
    }
    assert "\t 1,787\t" in texts["datalog"] and "11:23:14,559 05/24/2019" in texts["datalog"]
    log = parse_labview_run(_run(tmp_path, **texts))
    _assert_same_run(log, labview_log)
    assert log.conventions["numbers"].startswith("decimal commas")
    assert any("decimal commas (e.g. line 3)" in w for w in log.warnings)
    assert any(
        w.startswith("doses table: numbers are written with decimal commas") for w in log.warnings
    )


def test_timestamp_time_base_with_comma_fraction_and_day_first_date(tmp_path: Path) -> None:
    table = _datalog()
    table.drop("Elapsed Time [s]")
    table.apply("Timestamp", lambda s: re.sub(r"(\d\d)/(\d\d)/(\d{4})", r"\2.\1.\3", _comma(s)))
    assert table.rows[0][0] == "11:23:14,559 24.05.2019"
    path = _write(tmp_path, "DataLog.txt", table.text())
    log = parse_labview_datalog(path, ctx_for(path))
    assert log.start_time == "2019-05-24T11:23:14.559"
    assert log.series.height == 9450 and log.sample_period_s == pytest.approx(0.5, abs=1e-3)
    assert "%d.%m.%Y" in log.conventions["time_s"]
    merged = merge_labview(log, doses=parse_doses_table(DOSES, ctx_for(DOSES)))
    assert _by_label(_pulses(merged)) == {"TMA": 80, "H2O": 70}


# --- stop-flow recipes ---------------------------------------------------------------------------


def _stop_flow_table(fill: str = "0.50", unit: str = "Torr") -> str:
    lines = _text(EXECUTION).split("\n")
    out = [lines[0], lines[1].replace("[Torr]", f"[{unit}]")]
    for line in lines[2:]:
        cells = line.split("\t")
        if len(cells) > 1 and cells[1] != "None":
            cells[2], cells[5] = fill, "2: Fill-Hold (Stop Flow)"
        out.append("\t".join(cells))
    return "\n".join(out)


@pytest.mark.parametrize(("fill", "unit"), [("0.50", "Torr"), ("500.0", "mTorr")])
def test_stop_flow_execution_table(
    tmp_path: Path, labview_log: AldLog, fill: str, unit: str
) -> None:
    path = _write(tmp_path, EXECUTION.name, _stop_flow_table(fill, unit))
    table = parse_execution_table(path, ctx_for(path))
    doses = [s for s in table.steps if s.precursor]
    assert all(s.fill_pressure_torr == pytest.approx(0.5) for s in doses)
    assert {s.process_type for s in doses} == {"2: Fill-Hold (Stop Flow)"}
    assert table.steps[0].fill_pressure_torr is None  # N/A on the purge step
    plan = plan_from_execution_table(table)
    kinds = {s.kind for s in plan}
    assert kinds == {"fill", "purge"}
    fills = [s for s in plan if s.kind == "fill"]
    # a fill lasts the dose time (fill up to the pressure, then hold): width = dose time
    assert [s.duration_s for s in fills[:2]] == [1.0, 2.0]
    planned = planned_doses(plan)
    assert len(planned) == 150 and {d.kind for d in planned} == {"fill"}
    # the purge after a fill is the table's purge time, the offsets those of the pulse plan
    pulse_plan = plan_from_execution_table(parse_execution_table(EXECUTION, ctx_for(EXECUTION)))
    assert [(s.start_s, s.duration_s) for s in plan] == [
        (s.start_s, s.duration_s) for s in pulse_plan
    ]
    report = run_checks(labview_log, detect_pulses(labview_log), plan)
    rows = {r.name: r for r in report.results}
    assert rows["pulse_count:TMA"].status == "pass" and rows["pulse_count:TMA"].value == 80
    assert rows["plan_alignment"].status == "pass"
    merged = merge_labview(labview_log, execution=table)
    steps = merged.metadata["declared_recipe"]["steps"]
    assert steps[1]["fill_pressure_torr"] == pytest.approx(0.5)


def test_step_kind_reads_words_not_numbers() -> None:
    def step(process: str, fill: float | None = None) -> ExecutionStep:
        return ExecutionStep(1, "TMA", fill, 1.0, 20.0, process)

    assert labview.step_kind(step("1: Pulse-Purge (Full Flow)")) == "pulse"
    assert labview.step_kind(step("2: ALD Pulse-Purge (Full-Flow)")) == "pulse"
    assert labview.step_kind(step("2: Fill-Hold (Stop Flow)", 0.5)) == "fill"
    assert labview.step_kind(step("3: Stop-Flow")) == "fill"
    assert labview.step_kind(step("1")) == "pulse"  # execution array: a number only
    assert labview.step_kind(step("2", 0.5)) == "fill"


def test_stop_flow_doses_table_hold_times(tmp_path: Path) -> None:
    table = Table.read(DOSES)
    hold = table.at("Hold Start Elapsed Time [s]")
    pulse = table.at("Pulse/Fill Start Elapsed Time [s]")
    for row in table.rows:
        if row[2] != "None":
            row[hold] = f"{float(row[pulse]) + 0.400:9.3f}"
            row[3] = "2: Fill-Hold (Stop Flow)"
    path = _write(tmp_path, DOSES.name, table.text())
    doses = parse_doses_table(path, ctx_for(path))
    second = doses.doses[1]
    assert second.hold_start_s == pytest.approx(300.574)
    assert second.process_type == "2: Fill-Hold (Stop Flow)"


# --- how runs end --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "steps_line",
    ["Steps Completed:\t90/154", "Steps Completed: 90/154", "Steps Completed:\t90 of 154"],
)
def test_aborted_run(tmp_path: Path, steps_line: str) -> None:
    summary = _text(SUMMARY).replace("Steps Completed:\t154/154", steps_line)
    summary = re.sub(r"ALD Process Complete\..*\n", "ALD Process Aborted\n", summary)
    doses = Table.read(DOSES)
    doses.rows = doses.rows[:90]
    stop = float(doses.rows[-1][doses.at("Purge Start Elapsed Time [s]")]) + 5.0
    data = _datalog()
    data.rows = [r for r in data.rows if float(r[1]) <= stop]
    log = parse_labview_run(
        _run(tmp_path, datalog=data.text(), doses=doses.text(), summary=summary)
    )
    info = log.metadata["run_info"]
    assert (info["steps_completed"], info["steps_total"], info["complete"]) == (90, 154, False)
    assert info["status_text"] == "ALD Process Aborted"
    assert [a["text"] for a in log.metadata["alarms"]] == ["ALD Process Aborted"]
    pulses = _pulses(log)
    dosed = [r[2] for r in doses.rows if r[2] != "None"]
    assert _by_label(pulses) == {"TMA": dosed.count("TMA"), "H2O": dosed.count("H2O")}
    plan = plan_from_execution_table(parse_execution_table(EXECUTION, ctx_for(EXECUTION)))
    report = run_checks(log, detect_pulses(log), plan)
    rows = {r.name: r for r in report.results}
    assert (
        rows["run_completeness"].status == "fail" and "90/154" in rows["run_completeness"].details
    )
    assert rows["alarms"].status == "fail" and "Aborted" in rows["alarms"].details
    assert report.verdict == "fail"


def test_notes_and_saved_path_with_alarm_words_are_not_alarms(
    tmp_path: Path, datalog_only: AldLog
) -> None:
    text = _text(SUMMARY)
    notes = re.search(r"Notes:\t(.*)\n", text).group(1)  # type: ignore[union-attr]
    text = text.replace(
        notes,
        "Previous run aborted with an error: QCM failed to lock, alarm silenced.\n"
        "Second line: interlock tripped yesterday, process aborted then.",
    )
    text = text.replace("GaPO4\n", "GaPO4_failed-valve_error-retest\n")
    path = _write(tmp_path, SUMMARY.name, text)
    summary = parse_summary(path, ctx_for(path))
    assert summary.fields["Notes"].endswith("process aborted then.")
    assert summary.fields["Notes"].count("\n") == 1
    assert summary.status_text == "ALD Process Complete. Data and graphs saved to"
    assert summary.complete is True
    assert labview.summary_alarms(summary) == []
    log = merge_labview(datalog_only, summary=summary)
    report = run_checks(log, detect_pulses(log), None)
    assert next(r for r in report.results if r.name == "alarms").status == "pass"


def test_summary_status_lines_with_alarm_words_are_alarms(tmp_path: Path) -> None:
    text = _text(SUMMARY).replace(
        "Steps Completed:",
        "Error: MFC 2 flow out of range\nMFC interlock tripped\nSteps Completed:",
    )
    path = _write(tmp_path, SUMMARY.name, text)
    summary = parse_summary(path, ctx_for(path))
    texts = [a["text"] for a in labview.summary_alarms(summary)]
    assert texts == ["Error: MFC 2 flow out of range", "MFC interlock tripped"]
    assert summary.steps_completed == 154  # the lines before it did not swallow the key


# --- cut and missing data -----------------------------------------------------------------------


def test_doses_table_with_missing_rows(tmp_path: Path) -> None:
    table = Table.read(DOSES)
    gone = set(range(40, 46)) | {100}
    table.rows = [r for r in table.rows if int(r[0]) not in gone]
    log = parse_labview_run(_run(tmp_path, doses=table.text()))
    assert "doses table: Doses-DeltaM: steps 40-45, 100 missing (7 rows)" in log.warnings
    assert any(
        "dose steps of the execution table have no row (steps 40-45, 100)" in w
        for w in log.warnings
    )
    sources = log.metadata["valve_sources"]
    assert sources["Mod8/do1"]["label"] == "TMA" and sources["Mod8/do2"]["label"] == "H2O"
    assert _by_label(_pulses(log)) == {"TMA": 80, "H2O": 70}


def test_xtal_not_ok_stretch(tmp_path: Path, labview_log: AldLog) -> None:
    table = _datalog()
    ok, elapsed = table.at("Xtal OK? [0=F, 1=T]"), table.at("Elapsed Time [s]")
    bad_rows = [i for i, r in enumerate(table.rows) if 1000 <= float(r[elapsed]) < 1300]
    for i in bad_rows:
        table.rows[i][ok] = "0"
    log = parse_labview_run(_run(tmp_path, datalog=table.text()))
    assert f"QCM crystal not OK on {len(bad_rows)} rows: QCM values set empty there" in log.warnings
    mass, reference = log.series["Mass"], labview_log.series["Mass"]
    assert mass.null_count() == len(bad_rows)
    assert mass.is_null().arg_true().to_list() == bad_rows
    assert mass.drop_nulls().equals(reference.filter(mass.is_not_null()))
    assert log.series["Chamber Pressure"].equals(labview_log.series["Chamber Pressure"])
    pulses, ref = _pulses(log), _pulses(labview_log)
    assert len(pulses) == 150
    for p, r in zip(pulses, ref, strict=True):
        windows = (p.start_s - 2.5, (p.end_of_purge_s or p.start_s) + 0.5)
        if windows[1] < 995 or windows[0] > 1305:
            assert p.qcm_delta == r.qcm_delta
    blind = [p for p in pulses if p.start_s >= 1000 and (p.end_of_purge_s or 0) < 1300]
    assert blind and all(p.qcm_delta is None for p in blind)  # no mass, no delta
    run_checks(log, detect_pulses(log), labview_recipe())  # no exception


def test_datalog_cut_inside_the_last_field_drops_the_row(tmp_path: Path) -> None:
    data = DATALOG.read_bytes()
    end = data.index(b"\n", len(data) // 2)  # a row with all its fields but no line end
    path = tmp_path / "cut_DataLog.txt"
    path.write_bytes(data[:end])
    log = parse_labview_datalog(path, ctx_for(path))
    assert log.series.height == data[:end].count(b"\n") - 2
    assert any("no line end" in w for w in log.warnings)


@pytest.mark.parametrize("source", [DOSES, EXECUTION])
def test_companion_table_cut_mid_row(tmp_path: Path, source: Path) -> None:
    data = source.read_bytes()
    cut = data[: data.rindex(b"\n", 0, len(data) - 1) + 12]  # 11 characters of the last row
    path = tmp_path / source.name
    path.write_bytes(cut)
    if source is DOSES:
        table = parse_doses_table(path, ctx_for(path))
        rows, warnings = len(table.doses), table.warnings
    else:
        steps = parse_execution_table(path, ctx_for(path))
        rows, warnings = len(steps.steps), steps.warnings
    assert rows == 153
    assert any("line 156) has no line end" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("text", "message", "location"),
    [
        ("{title}\n{header}\n\n", "header only", "line 3"),  # newer builds: header + empty line
        ("{header}\n", "header only", "line 2"),
        ("{title}\n{header}", "header only", "line 3"),  # header without line end
        ("{title}\n", "no LabVIEW data-log header", "lines 1-2"),
    ],
)
def test_datalog_stubs(tmp_path: Path, text: str, message: str, location: str) -> None:
    table = _datalog()
    path = _write(
        tmp_path, "stub.txt", text.format(title=table.title, header="\t".join(table.labels))
    )
    with pytest.raises(ParseError) as info:
        parse_labview_datalog(path, ctx_for(path))
    assert message in info.value.message and info.value.location == location


# --- the newer program version (2021 builds) -----------------------------------------------------


def _execution_array(table: Table) -> str:
    number = {"None": 0, "TMA": 1, "H2O": 2}
    lines = ["Test_ExecutionArray.txt"]
    lines.append(
        "Precursor  \tFill Pressure [Torr]\tDose Time [sec.]\tPurge Time [sec.]\tProcess Type"
    )
    for row in table.rows:
        dose = "0.00" if row[3] == "N/A" else row[3].strip()
        kind = 0 if row[1] == "None" else 1
        lines.append(
            f"{number[row[1]]:8d}\t   -1.00\t{float(dose):8.2f}\t{float(row[4]):8.2f}\t{kind:8d}"
        )
    return "".join(f"{line}\n\n" if i else f"{line}\n" for i, line in enumerate(lines))


def _newer_build(tmp_path: Path, with_table: bool = True) -> list[Path]:
    """The real run as the 2021 builds write it: an empty line after every row, valves as
    ``0.000``/``1.000``, ``ALD Pulse-Purge`` process types, ``N/A`` hold starts, the summary's
    new ending (no Steps Completed / Process End keys) and an ``_ExecutionArray.txt``."""
    data = _datalog()
    for m in (7, 8):
        for b in range(8):
            data.apply(f"Mod{m}/do{b}", lambda v: f"{float(v):6.3f}")
    execution = Table.read(EXECUTION)
    for row in execution.rows:
        row[5] = row[5].replace("1: Pulse-Purge (Full Flow)", "2: ALD Pulse-Purge (Full-Flow)")
    doses = Table.read(DOSES)
    for row in doses.rows:
        row[3] = row[3].replace("Pulse-Purge", "ALD Pulse-Purge")
        row[6] = "N/A"
    summary = _text(SUMMARY).replace(", D2=H2S", ", D2=H2S, D3=N/A, D4=n/a")
    summary = summary.split("Process End Timestamp")[0]
    summary += "\nALD Recipe Complete!\n154  steps executed.\n12:41:59.331 PM 5/24/2019"
    texts = {
        "DataLog.txt": data.text(blank_after_rows=True),
        "Doses-DeltaM.txt": doses.text(blank_after_rows=True),
        "Summary.txt": summary,
        "ExecutionArray.txt": _execution_array(execution),
    }
    if with_table:
        texts["ExecutionTable.txt"] = execution.text(blank_after_rows=True)
    return [_write(tmp_path, f"Test_{name}", text) for name, text in texts.items()]


def test_newer_build_run(tmp_path: Path, labview_log: AldLog) -> None:
    log = parse_labview_run(_newer_build(tmp_path))
    assert log.series.equals(labview_log.series)
    assert log.metadata["valve_sources"] == labview_log.metadata["valve_sources"]
    assert log.metadata["companions"] == ["execution_array", "summary", "execution_table", "doses"]
    assert log.metadata["execution_array"] == {"steps": 154, "agrees_with_execution_table": True}
    assert log.metadata["precursor_ports"] == {"A1": "TMA", "B1": "H2O", "C2": "MoF6", "D2": "H2S"}
    info = log.metadata["run_info"]
    assert (info["steps_completed"], info["steps_total"]) == (154, 154)
    assert info["steps_total_source"] == "execution_table" and info["complete"] is True
    assert info["status_text"] == "ALD Recipe Complete!"
    assert info["end_time"] == "2019-05-24T12:41:59.331"
    assert info["messages"].startswith("ALD Recipe Complete!\n154  steps executed.")
    assert log.metadata["alarms"] == []
    assert [p.as_dict() for p in _pulses(log)] == [p.as_dict() for p in _pulses(labview_log)]
    plan = plan_from_execution_table(parse_execution_table(EXECUTION, ctx_for(EXECUTION)))
    report = run_checks(log, detect_pulses(log), plan)
    rows = {r.name: r for r in report.results}
    for name in ("pulse_count:TMA", "pulse_count:H2O", "run_completeness", "alarms"):
        assert rows[name].status == "pass", rows[name]


def test_execution_array_stands_in_for_a_missing_table(tmp_path: Path) -> None:
    paths = _newer_build(tmp_path, with_table=False)
    log = parse_labview_run(paths)
    recipe = log.metadata["declared_recipe"]
    assert recipe["doses_per_precursor"] == {"TMA": 80, "H2O": 70}
    assert recipe["steps"][1]["precursor"] == "TMA" and recipe["steps"][0]["precursor"] is None
    assert any("named from the doses table" in w for w in log.warnings)
    assert any("steps come from the execution array" in w for w in log.warnings)
    array = labview.parse_execution_array(paths[-1], ctx_for(paths[-1]))
    assert array.steps[1].precursor == "#1" and array.steps[2].precursor == "#2"
    summary_only = labview.resolve_precursor_numbers(
        array, summary=parse_summary(SUMMARY, ctx_for(SUMMARY))
    )
    assert summary_only.steps[2].precursor == "H2O"  # 2nd entry of "A1=TMA, B1=H2O, ..."
    unnamed = labview.resolve_precursor_numbers(array)
    assert any("could not be named" in w for w in unnamed.warnings)
    table = parse_execution_table(EXECUTION, ctx_for(EXECUTION))
    from_array = planned_doses(plan_from_execution_table(summary_only))
    from_table = planned_doses(plan_from_execution_table(table))
    assert [(d.source_label, d.kind, d.start_s, d.width_s, d.purge_s) for d in from_array] == [
        (d.source_label, d.kind, d.start_s, d.width_s, d.purge_s) for d in from_table
    ]


def test_execution_array_that_disagrees_is_reported(tmp_path: Path) -> None:
    paths = _newer_build(tmp_path)
    array = next(p for p in paths if "Array" in p.name)
    text = _text(array).replace("    1.00\t   20.00", "    1.50\t   20.00", 1)
    array.write_bytes(text.encode("latin-1"))
    log = parse_labview_run(paths)
    assert log.metadata["execution_array"]["agrees_with_execution_table"] is False
    assert any(w.startswith("execution array: steps 2 differ") for w in log.warnings)


# --- unreadable input: ParseError naming the place and the cause --------------------------------


def test_unreadable_companions_name_place_and_cause(tmp_path: Path) -> None:
    def fails(name: str, text: str, parse: Callable[[Path, ParseContext], object]) -> ParseError:
        path = _write(tmp_path, name, text)
        with pytest.raises(ParseError) as info:
            parse(path, ctx_for(path))
        return info.value

    execution = _text(EXECUTION)
    error = fails(
        "a.txt",
        execution.replace("Dose Time [s]", "Dose Time [furlongs]"),
        parse_execution_table,
    )
    assert "'furlongs' is not a time unit" in error.message and error.location == "line 2"
    error = fails(
        "b.txt",
        execution.replace("Fill Pressure [Torr]", "Fill Pressure [V]"),
        parse_execution_table,
    )
    assert "'V' cannot be converted to Torr" in error.message and error.location == "line 2"
    lines = execution.split("\n")
    error = fails("c.txt", "\n".join(lines[:2]) + "\n", parse_execution_table)
    assert "no steps" in error.message and error.location == "line 3"
    array = _execution_array(Table.read(EXECUTION)).replace("       1\t", "     TMA\t", 1)
    error = fails("d.txt", array, labview.parse_execution_array)
    assert (
        "'TMA' is not a number" in error.message and error.location == "line 6"
    )  # title, header, empty, step 1, empty
    error = fails("e.txt", "Summary\nnothing here\n", parse_summary)
    assert error.location == "lines 1-2"
    table = _datalog()
    table.drop("Elapsed Time [s]")
    table.apply("Timestamp", lambda s: "yesterday")
    error = fails("f.txt", table.text(), parse_labview_datalog)
    assert "no known format" in error.message and error.location == "line 3"


def test_parsers_stay_pure(tmp_path: Path) -> None:
    paths = _newer_build(tmp_path)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    first = parse_labview_run(paths)
    second = parse_labview_run(list(reversed(paths)))
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before
    assert first.series.equals(second.series) and first.metadata == second.metadata
    assert first.warnings == second.warnings


def test_median_qcm_gain_survives_the_variants(tmp_path: Path, labview_log: AldLog) -> None:
    """The physics the checks read (QCM gain per TMA dose) is the same in every dialect."""
    reference = statistics.median(
        p.qcm_delta for p in _pulses(labview_log) if p.source_label == "TMA" and p.qcm_delta
    )
    for paths in (
        _newer_build(tmp_path / "new"),
        [_write(tmp_path / "crlf", p.name, _text(p), newline="\r\n") for p in RUN],
    ):
        log = parse_labview_run(paths)
        gain = statistics.median(
            p.qcm_delta for p in _pulses(log) if p.source_label == "TMA" and p.qcm_delta
        )
        assert gain == reference
