"""Sidecar files: store them and attach them to the cycling tests they describe.

A sidecar (Arbin ``_Metadata.csv``, BioLogic ``.mps``, Novonix header-only file) is never a
cycling test. It is matched to tests of the same project by file name as the vendor names them
(``cells.parsers.sidecars``: exact stem, or a stem prefix for a settings file covering a run's
technique and channel files). Whichever arrives first, the link is made when the other arrives.
The attached sidecars' content is shown in the test's ``metadata["sidecars"]``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from cells.models import CyclerSidecar, CyclingTest
from cells.parsers.sidecars import SidecarData, key_matches, stem_key
from lims.events.services import event_emit
from lims.ingestion.registry import IngestOutcome
from lims.models import IngestionJob


def _matches(sidecar: CyclerSidecar, test: CyclingTest) -> bool:
    stem = stem_key(test.raw_file.original_name)
    if not any(key and key_matches(stem, key) for key in (sidecar.key, sidecar.alt_key)):
        return False
    if sidecar.kind == "novonix_header" and sidecar.channel and test.channel:
        # Both channels come from a Novonix summary block: they must agree.
        return sidecar.channel.lstrip("0") == test.channel.lstrip("0")
    return True


def _shown(sidecar: CyclerSidecar) -> dict[str, Any]:
    return {
        "kind": sidecar.kind,
        "file": sidecar.raw_file.original_name,
        "sha256": sidecar.raw_file.sha256,
        "sidecar": sidecar.pk,
        "content": sidecar.content,
    }


def _show(test: CyclingTest) -> None:
    """Write the attached sidecars into the test's metadata (replacing what was there)."""
    shown = [_shown(s) for s in test.sidecars.select_related("raw_file").order_by("pk")]
    metadata = dict(test.metadata or {})
    if shown:
        metadata["sidecars"] = shown
    else:
        metadata.pop("sidecars", None)
    if metadata != test.metadata:
        test.metadata = metadata
        test.save(update_fields=["metadata"])


def sidecars_attach_to_test(*, test: CyclingTest) -> list[int]:
    """Attach every sidecar of the test's project that names this test's file; show them all.

    Called when a test is stored (first time or re-run, which rewrites its metadata).
    """
    stem = stem_key(test.raw_file.original_name)
    candidates = [stem] + [stem[: i + 1] for i, char in enumerate(stem) if char == "_"]
    found = CyclerSidecar.objects.filter(
        Q(key__in=candidates) | Q(alt_key__in=candidates), project_id=test.project_id
    ).select_related("raw_file")
    new = [s for s in found if _matches(s, test)]
    if new:
        test.sidecars.add(*new)
    _show(test)
    return [s.pk for s in new]


def sidecar_persist(*, job: IngestionJob, data: SidecarData) -> IngestOutcome:
    """Store a sidecar file and attach it to the matching tests already in its project."""
    keys = [*data.keys, ""][:2]
    sidecar, _ = CyclerSidecar.objects.update_or_create(
        raw_file=job.raw_file,
        defaults={
            "project": job.project,
            "job": job,
            "kind": data.sidecar_kind,
            "vendor": data.vendor,
            "key": keys[0][:255],
            "alt_key": keys[1][:255],
            "channel": data.channel[:50],
            "content": data.content,
        },
    )
    query = Q()
    for key in filter(None, keys):
        query |= Q(raw_file__original_name__istartswith=key.rstrip("_"))
    tests = [
        t
        for t in CyclingTest.objects.filter(query, project=job.project).select_related("raw_file")
        if _matches(sidecar, t)
    ]
    if tests:
        sidecar.tests.add(*tests)
    for test in sidecar.tests.select_related("raw_file"):
        _show(test)
    attached = sorted(t.pk for t in sidecar.tests.all())
    event_emit(
        topic="cells.sidecar.stored",
        payload={"sidecar": sidecar.pk, "kind": sidecar.kind, "tests": attached, "job": job.pk},
    )
    result: dict[str, Any] = {
        "sidecar": sidecar.pk,
        "sidecar_kind": sidecar.kind,
        "attached_to_tests": attached,
        "keys": [k for k in keys if k],
    }
    if not attached:
        result["note"] = (
            "no cycling test of this project matches yet; it is attached when its data "
            f"file arrives (file names starting with {keys[0]!r})"
        )
    if data.warnings:
        result["warnings"] = data.warnings
    return IngestOutcome(status=IngestionJob.Status.SUCCEEDED, result=result)
