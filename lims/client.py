"""A small typed Python client for the LIMS REST API (``/api/v1/``).

Standalone: ``requests`` and ``polars`` only, no Django and nothing else of the project
(an import-linter contract keeps it so), so it can be copied next to a notebook::

    from lims.client import LimsClient

    lims = LimsClient("http://127.0.0.1:8000", token="<API token>")
    up = lims.upload("run.mpr", cell="DEMO-NMC811-001")     # an instrument or a person's token
    job = lims.wait_for_job(up.job_id)                       # raises JobFailed with the reason
    cells = lims.cells()                                     # polars: cells x tests x metrics
    series = lims.series(job.result["cycling_test"])         # polars: the full time series

An instrument token may only upload and read its own jobs; the other calls need a person's
token (``manage.py drf_create_token <user>``) and see that person's projects only.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import requests

# metrics of each test's performance record, as the cells table shows them
METRICS = (
    "cycles",
    "first_charge_mah",
    "first_discharge_mah",
    "first_discharge_mah_g",
    "initial_ce",
    "capacity_c10_mah_g",
    "capacity_c50_mah_g",
    "capacity_c100_mah_g",
    "retention_pct",
    "reference_cycle",
    "cycles_to_80",
    "mean_ce",
    "active_mass_mg",
)
_CELL_COLUMNS = ("cell_type", "format", "cathode_active_material", "se_material")
_FINISHED = ("succeeded", "failed", "needs_linking")


class LimsError(RuntimeError):
    """The server said no: the status code and its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class JobFailed(RuntimeError):
    """A job ended ``failed``; ``job.error`` names the file, the place and the cause."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} failed: {job.error}")
        self.job = job


@dataclass(frozen=True)
class Upload:
    job_id: int
    status: str
    sha256: str
    size: int
    created: bool  # False: these bytes were there already (the first upload's job)


@dataclass(frozen=True)
class Job:
    id: int
    status: str
    error: str
    kind: str
    parser: str
    result: dict[str, Any] = field(default_factory=dict)


class LimsClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 120.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    # -- plumbing -------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}/api/v1/{path.lstrip('/')}"

    def _get(self, path: str, **params: Any) -> requests.Response:
        response = self.session.get(self._url(path), params=params, timeout=self.timeout)
        _raise_for(response)
        return response

    def _pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following ``next``."""
        url: str | None = self._url(path)
        while url:
            body = self._get(url, **params).json()
            params = {}  # ``next`` carries them
            yield from body["results"]
            url = body.get("next")

    # -- ingestion ------------------------------------------------------------------------

    def upload(
        self,
        path: str | Path,
        *,
        cell: str | None = None,
        kind: str | None = None,
        sample: str | None = None,
        run: str | None = None,
        anneal: str | None = None,
        project: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Upload:
        """Push a file; the server stores it and queues a job (``wait_for_job``)."""
        path = Path(path)
        fields = {"cell": cell, "kind": kind, "sample": sample, "run": run}
        fields |= {"anneal": anneal, "project": project}
        data = {k: v for k, v in fields.items() if v is not None}
        if metadata is not None:
            data["metadata"] = json.dumps(metadata)
        with path.open("rb") as fh:
            response = self.session.post(
                self._url("ingest/"),
                files={"file": (path.name, fh)},
                data=data,
                timeout=self.timeout,
            )
        _raise_for(response)
        body = response.json()
        return Upload(
            job_id=int(body["job"]["id"]),
            status=body["job"]["status"],
            sha256=body["raw_file"]["sha256"],
            size=int(body["raw_file"]["size"]),
            created=response.status_code == 202,
        )

    def job(self, job_id: int) -> Job:
        body = self._get(f"jobs/{job_id}/").json()
        return Job(
            id=int(body["id"]),
            status=body["status"],
            error=body.get("error") or "",
            kind=body.get("kind") or "",
            parser=f"{body.get('parser_name', '')} {body.get('parser_version', '')}".strip(),
            result=body.get("result") or {},
        )

    def wait_for_job(self, job_id: int, *, timeout: float = 600.0, poll_s: float = 1.0) -> Job:
        """Poll until the job leaves pending/running; ``failed`` raises JobFailed. A file
        waiting for its cell ends ``needs_linking`` (returned: link it, nothing was lost)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.status == "failed":
                raise JobFailed(job)
            if job.status in _FINISHED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout:.0f} s")
            time.sleep(poll_s)

    # -- reading --------------------------------------------------------------------------

    def cells(self, **filters: str) -> pl.DataFrame:
        """One row per cell and cycling test with the test's performance metrics (a cell
        without a test: one row, metrics empty). ``filters``: the cells list's, e.g.
        ``q="NMC"``, ``project="assb"``."""
        tests: dict[str, list[dict[str, Any]]] = {}
        for test in self._pages("cycling-tests/"):
            if test.get("cell"):
                tests.setdefault(test["cell"], []).append(test)
        rows = []
        for cell in self._pages("cells/", **filters):
            base = {"cell": cell["code"], "project": cell["project"]}
            base |= {k: cell.get(k) for k in _CELL_COLUMNS}
            for test in tests.get(cell["code"], []) or [{}]:
                record = test.get("performance") or {}
                row = {
                    **base,
                    "test": test.get("id"),
                    "raw_sha256": test.get("raw_sha256"),
                    "parser": test.get("parser_name"),
                    "parser_version": test.get("parser_version"),
                }
                row |= {m: record.get(m) for m in METRICS}
                rows.append(row)
        schema: dict[str, Any] = dict.fromkeys(["cell", "project", *_CELL_COLUMNS], pl.String)
        schema |= {"test": pl.Int64, "raw_sha256": pl.String, "parser": pl.String}
        schema |= {"parser_version": pl.String}
        schema |= {m: pl.Float64 for m in METRICS}
        return pl.DataFrame(rows, schema=schema, strict=False)

    def explorer(self, *filters: str, **query: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The explorer's table (one row per cell: process variables from its lineage, metrics
        of its stitched record) and, in the same shape, where each value came from.
        ``filters``: ``"column:op:value"`` (op: eq ne lt le gt ge has), e.g.
        ``client.explorer("supercycles:ge:10")``."""
        body = self._get("explorer/", **query, f=list(filters)).json()
        columns = body["columns"]
        schema = {c["key"]: pl.Float64 if c["numeric"] else pl.String for c in columns}
        values = pl.DataFrame([r["values"] for r in body["rows"]], schema=schema, strict=False)
        sources = pl.DataFrame(
            [{c["key"]: r["sources"].get(c["key"], "") for c in columns} for r in body["rows"]],
            schema=dict.fromkeys(schema, pl.String),
        )
        return values, sources

    def series(self, test_id: int) -> pl.DataFrame:
        """A test's full time series (canonical columns: time_s, cycle, step, current_a with
        + = charge, voltage_v, the instrument's capacity/energy counters, temperature_c),
        from its Parquet download; ``series_provenance`` says where it came from."""
        return pl.read_parquet(io.BytesIO(self._series_bytes(test_id)))

    def series_provenance(self, test_id: int) -> dict[str, Any]:
        """Raw sha256, parser and version, conventions of a test's series (Parquet metadata)."""
        meta = pl.read_parquet_metadata(io.BytesIO(self._series_bytes(test_id)))
        provenance: dict[str, Any] = json.loads(meta["lims.provenance"])
        return provenance

    def _series_bytes(self, test_id: int) -> bytes:
        return self._get(f"cycling-tests/{test_id}/series/", **{"as": "parquet"}).content

    def download_raw(self, raw_file_id: int, dest: str | Path) -> Path:
        """Save a raw file as it arrived; its sha256 is checked against the server's."""
        response = self.session.get(
            self._url(f"raw-files/{raw_file_id}/download/"), stream=True, timeout=self.timeout
        )
        _raise_for(response)
        dest = Path(dest)
        digest = hashlib.sha256()
        with dest.open("wb") as out:
            for chunk in response.iter_content(1024 * 1024):
                digest.update(chunk)
                out.write(chunk)
        expected = response.headers.get("X-LIMS-Raw-SHA256", "")
        if digest.hexdigest() != expected:
            dest.unlink()
            raise LimsError(response.status_code, f"raw file {raw_file_id}: sha256 mismatch")
        return dest


def _raise_for(response: requests.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = json.dumps(response.json())
    except ValueError:
        message = response.text[:500]
    raise LimsError(response.status_code, message)
