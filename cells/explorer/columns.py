"""The explorer's columns: what each means, its unit, and how it is derived (pure).

Every value in a row also carries its own source (which run, record or sample it came from);
``derivation`` here is the rule, the row's source is the instance.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    group: str  # "cell" | "process" | "metric"
    unit: str = ""
    numeric: bool = True
    derivation: str = ""

    @property
    def title(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


def _c(key: str, label: str, group: str, unit: str = "", derivation: str = "") -> Column:
    return Column(key, label, group, unit, True, derivation)


def _t(key: str, label: str, group: str, derivation: str = "") -> Column:
    return Column(key, label, group, "", False, derivation)


LINEAGE = (
    "the cell's cathode, solid-electrolyte and anode samples and every sample they were made "
    "from (split, mix, deposition, anneal, press operations), walked up to the lots"
)

COLUMNS: tuple[Column, ...] = (
    _t("cell", "Cell", "cell", "cell code"),
    _t("project", "Project", "cell"),
    _t("cell_type", "Cell type", "cell"),
    _t("format", "Format", "cell"),
    _t("cathode_material", "Cathode active material", "cell"),
    _t("solid_electrolyte", "Solid electrolyte", "cell"),
    _t("anode", "Anode", "cell"),
    _c(
        "active_pct",
        "Active fraction",
        "cell",
        "wt %",
        "cell.active_fraction (lineage mix, else typed ratio)",
    ),
    _c(
        "fabrication_pressure_mpa",
        "Fabrication pressure",
        "cell",
        "MPa",
        "the press operation in the lineage, else the cell's typed value",
    ),
    _c("stack_pressure_mpa", "Stack pressure", "cell", "MPa"),
    _c("test_temperature_c", "Test temperature", "cell", "°C"),
    _t(
        "coating",
        "Coating material",
        "process",
        f"recipe target material of the run(s) in {LINEAGE}",
    ),
    _t("recipe", "Recipe (version)", "process", "the run's recipe snapshot: name and version"),
    _t(
        "subcycle_ratio",
        "Sub-cycle ratio",
        "process",
        "sub-cycles per supercycle, in recipe order (e.g. 1:4)",
    ),
    _c(
        "subcycle_ratio_value",
        "Sub-cycle ratio (2nd : 1st)",
        "process",
        "",
        "second sub-cycle count / first, two-sub-cycle recipes only",
    ),
    _c("supercycles", "Supercycles N", "process", "", "the run's actual cycles, else planned"),
    _c(
        "total_ald_cycles", "Total ALD cycles", "process", "", "sub-cycle counts per supercycle x N"
    ),
    _c(
        "expected_thickness_nm",
        "Expected thickness",
        "process",
        "nm",
        "recipe snapshot: sub-cycle GPC x counts",
    ),
    _c(
        "measured_thickness_nm",
        "Measured thickness",
        "process",
        "nm",
        "mean of the run's thickness measurements",
    ),
    _c(
        "gpc_angstrom",
        "Measured GPC",
        "process",
        "Å/cycle",
        "measured thickness / total ALD cycles",
    ),
    _c(
        "expected_loading_wt_pct",
        "Expected coating loading",
        "process",
        "wt %",
        "BET area of the run's powder load x thickness (measured, else expected) x the "
        "recipe's film density",
    ),
    _c(
        "measured_loading_wt_pct",
        "Measured coating loading",
        "process",
        "wt %",
        f"mean coating wt % of composition measurements (ICP) on {LINEAGE}",
    ),
    _t("run_qc", "Run QC verdict", "process", "worst tool-log check of the run"),
    _t("precursor_lots", "Precursor bottles", "process", "lots on the tool's ports during the run"),
    _c("deposition_temperature_c", "Deposition temperature", "process", "°C", "recipe snapshot"),
    _t("runs", "Deposition runs", "process", LINEAGE),
    _c(
        "anneal_peak_c",
        "Anneal peak temperature",
        "process",
        "°C",
        "highest segment target of the anneal",
    ),
    _c("anneal_dwell_min", "Anneal dwell", "process", "min", "dwell time at the peak temperature"),
    _t("anneal_atmosphere", "Anneal atmosphere", "process"),
    _t("anneals", "Anneals", "process", LINEAGE),
    _c(
        "air_exposure_min",
        "Air exposure",
        "process",
        "min",
        f"ambient-air exposure events summed over {LINEAGE}",
    ),
    _c("first_discharge_mah_g", "First discharge", "metric", "mAh/g", "stitched record"),
    _c("initial_ce_pct", "Initial CE", "metric", "%", "stitched record"),
    _c("capacity_c10_mah_g", "Capacity at cycle 10", "metric", "mAh/g", "stitched record"),
    _c("capacity_c50_mah_g", "Capacity at cycle 50", "metric", "mAh/g", "stitched record"),
    _c("capacity_c100_mah_g", "Capacity at cycle 100", "metric", "mAh/g", "stitched record"),
    _c(
        "retention_c100_pct",
        "Retention at cycle 100",
        "metric",
        "%",
        "capacity at 100 / capacity at the reference cycle",
    ),
    _c("retention_pct", "Retention at last cycle", "metric", "%", "stitched record"),
    _c("cycles_to_80", "Cycles to 80 %", "metric", "", "stitched record"),
    _c("mean_ce_pct", "Mean CE", "metric", "%", "stitched record, cycles 2..N"),
    _c("cycles", "Cycles", "metric", "", "stitched record"),
    _c(
        "interface_r_first_ohm",
        "Interfacial resistance, first",
        "metric",
        "Ω",
        "first spectrum placed on the stitched cycles",
    ),
    _c(
        "interface_r_last_ohm",
        "Interfacial resistance, last",
        "metric",
        "Ω",
        "last spectrum placed on the stitched cycles",
    ),
)

# the cell code, then what was done, what came of it, and the cell's build
_ORDER = {"process": 1, "metric": 2, "cell": 3}
COLUMNS = tuple(sorted(COLUMNS, key=lambda c: 0 if c.key == "cell" else _ORDER[c.group]))
BY_KEY = {c.key: c for c in COLUMNS}
NUMERIC = tuple(c.key for c in COLUMNS if c.numeric)
TEXT = tuple(c.key for c in COLUMNS if not c.numeric)
