"""Who may do what, for every API operation and every page: the authorization matrix.

The operations come from the committed OpenAPI schema (``schema.yml``) and the pages from the
URL conf; each needs an entry below (a new endpoint without one fails
``test_every_endpoint_has_an_entry``). Each persona then sends one request per operation
against one project's objects (``world``), and the answer's class is compared with the
expected one: a viewer reads, an editor writes, another project's member finds nothing, an
instrument token only ingests and reads its own jobs, anonymous is sent to log in, staff alone
write the shared catalogues. Unsafe requests carry an empty body: "allowed" means the request
got past authorization (2xx, or 400 for the empty body); each request runs in a savepoint that
is rolled back, so the cells are independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[2]
# mixed: a viewer here and an editor of another project (the object's project decides)
PERSONAS = ("anonymous", "other", "viewer", "mixed", "editor", "manager", "instrument", "staff")

# --- what each endpoint is ---------------------------------------------------------------------
# data: a project's data (viewer reads, editor writes); catalogue: shared by all projects (every
# person reads, staff write); ingest: files in (editors and instrument tokens); jobs: an
# instrument token also reads its own; staff: installation-wide (events, deliveries, webhooks),
# staff only.
API: dict[str, str] = {
    "/api/v1/ald-tools/": "data",
    "/api/v1/ald-tools/{id}/": "data",
    "/api/v1/cells/": "data",
    "/api/v1/cells/{code}/": "data",
    "/api/v1/cells/{code}/chain/": "data",
    "/api/v1/cells/{code}/eln/": "data",
    "/api/v1/cells/{code}/stitched/dqdv/": "data",
    "/api/v1/cells/{code}/stitched/rate/": "data",
    "/api/v1/chemicals/": "catalogue",
    "/api/v1/chemicals/{id}/": "catalogue",
    "/api/v1/column-mappings/": "data",
    "/api/v1/column-mappings/{id}/": "data",
    "/api/v1/composition-measurements/": "data",
    "/api/v1/composition-measurements/{id}/": "data",
    "/api/v1/cycling-tests/": "data",
    "/api/v1/cycling-tests/{id}/": "data",
    "/api/v1/cycling-tests/{id}/attach/": "data",
    "/api/v1/cycling-tests/{id}/cycles/": "data",
    "/api/v1/cycling-tests/{id}/detach/": "data",
    "/api/v1/cycling-tests/{id}/dqdv/": "data",
    "/api/v1/cycling-tests/{id}/link/": "data",
    "/api/v1/cycling-tests/{id}/rate/": "data",
    "/api/v1/cycling-tests/{id}/series/": "data",
    "/api/v1/cycling-tests/{id}/symmetric/": "data",
    "/api/v1/deposition-runs/": "data",
    "/api/v1/deposition-runs/{code}/": "data",
    "/api/v1/deposition-runs/{code}/abort/": "data",
    "/api/v1/deposition-runs/{code}/checks/": "data",
    "/api/v1/deposition-runs/{code}/complete/": "data",
    "/api/v1/deposition-runs/{code}/dose-check/": "data",
    "/api/v1/deposition-runs/{code}/eln/": "data",
    "/api/v1/deposition-runs/{code}/fail-qc/": "data",
    "/api/v1/deposition-runs/{code}/gpc/": "data",
    "/api/v1/deposition-runs/{code}/loads/": "data",
    "/api/v1/deposition-runs/{code}/precursors/": "data",
    "/api/v1/deposition-runs/{code}/pulses/": "data",
    "/api/v1/deposition-runs/{code}/recheck/": "data",
    "/api/v1/deposition-runs/{code}/start/": "data",
    "/api/v1/eis-spectra/": "data",
    "/api/v1/eis-spectra/{id}/": "data",
    "/api/v1/eis-spectra/{id}/fits/": "data",
    "/api/v1/eis-spectra/{id}/link/": "data",
    "/api/v1/eis-spectra/arrhenius/": "data",
    "/api/v1/explorer/": "data",
    "/api/v1/events/": "staff",
    "/api/v1/events/{id}/": "staff",
    "/api/v1/deliveries/": "staff",
    "/api/v1/deliveries/{id}/": "staff",
    "/api/v1/deliveries/{id}/resend/": "staff",
    "/api/v1/webhooks/{id}/": "staff",
    "/api/v1/webhooks/{id}/replay/": "staff",
    "/api/v1/film-properties/": "data",
    "/api/v1/film-properties/{id}/": "data",
    "/api/v1/ingest/": "ingest",
    "/api/v1/instruments/": "data",
    "/api/v1/instruments/{id}/": "data",
    "/api/v1/jobs/": "jobs",
    "/api/v1/jobs/{id}/": "jobs",
    "/api/v1/jobs/{id}/rerun/": "data",
    "/api/v1/material-lots/": "data",
    "/api/v1/material-lots/{lot_id}/cells/": "data",
    "/api/v1/material-lots/{id}/": "data",
    "/api/v1/materials/": "catalogue",
    "/api/v1/materials/{id}/": "catalogue",
    "/api/v1/post-treatments/": "data",
    "/api/v1/post-treatments/{code}/": "data",
    "/api/v1/post-treatments/{code}/complete/": "data",
    "/api/v1/precursor-lots/": "data",
    "/api/v1/precursor-lots/{id}/": "data",
    "/api/v1/precursor-lots/{id}/runs/": "data",
    "/api/v1/process-references/": "catalogue",
    "/api/v1/process-references/{id}/": "catalogue",
    "/api/v1/projects/": "data",
    "/api/v1/projects/{id}/": "data",
    "/api/v1/projects/{id}/members/": "manage",
    "/api/v1/projects/{id}/members/{username}/": "manage",
    "/api/v1/raw-files/": "data",
    "/api/v1/raw-files/check/": "ingest",  # asked before an upload (lims-harvest)
    "/api/v1/raw-files/{id}/": "data",
    "/api/v1/raw-files/{id}/download/": "data",
    "/api/v1/recipes/": "data",
    "/api/v1/recipes/{id}/": "data",
    "/api/v1/recipes/{id}/new-version/": "data",
    "/api/v1/recipes/{id}/steps/": "data",
    "/api/v1/run-log-files/": "data",
    "/api/v1/run-log-files/{id}/": "data",
    "/api/v1/run-log-files/{id}/link/": "data",
    "/api/v1/samples/": "data",
    "/api/v1/samples/{code}/": "data",
    "/api/v1/samples/{code}/eln/": "data",
    "/api/v1/samples/{code}/exposures/": "data",
    "/api/v1/samples/{code}/history/": "data",
    "/api/v1/samples/{code}/lineage/": "data",
    "/api/v1/samples/{code}/split/": "data",
    "/api/v1/samples/import/": "data",
    "/api/v1/samples/mix/": "data",
    "/api/v1/source-installations/": "data",
    "/api/v1/source-installations/{id}/": "data",
    "/api/v1/thickness-measurements/": "data",
    "/api/v1/thickness-measurements/{id}/": "data",
    "/api/v1/tool-sources/": "data",
    "/api/v1/tool-sources/{id}/": "data",
    "/api/v1/tool-sources/{id}/lot-at/": "data",
}

# Pages by URL name: (kind, methods). page: a project's data; staff: the dashboard; public:
# log in and out. Catalogue routes are expanded per registered list (``lims.catalogue``).
PAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "home": ("page", ("GET",)),
    "login": ("public", ("GET",)),
    "logout": ("public", ("POST",)),
    "upload": ("page", ("GET", "POST")),
    "job-list": ("page", ("GET",)),
    "job-detail": ("page", ("GET",)),
    "job-status": ("page", ("GET",)),
    "job-rerun": ("page", ("POST",)),
    "dashboard": ("staff", ("GET",)),
    "project-list": ("page", ("GET",)),
    "project-detail": ("manage", ("GET",)),
    "project-member-set": ("manage", ("POST",)),
    "project-member-remove": ("manage", ("POST",)),
    "project-token-issue": ("manage", ("POST",)),
    "project-token-revoke": ("manage", ("POST",)),
    "cells:cell-list": ("page", ("GET",)),
    "cells:cell-create": ("page", ("GET", "POST")),
    "cells:cells-from-lot": ("page", ("GET",)),
    "cells:explorer": ("page", ("GET",)),
    "cells:explorer-export": ("page", ("GET",)),
    "cells:explorer-view-create": ("personal", ("POST",)),
    "cells:explorer-view": ("page", ("GET",)),
    "cells:explorer-bottle": ("page", ("GET",)),
    "cells:spectrum-detail": ("page", ("GET",)),
    "cells:spectrum-refit": ("page", ("POST",)),
    "cells:spectrum-link": ("page", ("POST",)),
    "cells:cell-detail": ("page", ("GET",)),
    "cells:cell-edit": ("page", ("GET", "POST")),
    "cells:cycling-test-chain": ("page", ("POST",)),
    "samples:sample-list": ("page", ("GET",)),
    "samples:sample-create": ("page", ("GET", "POST")),
    "samples:sample-import": ("page", ("GET", "POST")),
    "samples:sample-mix": ("page", ("GET", "POST")),
    "samples:lot-list": ("page", ("GET", "POST")),
    "samples:material-list": ("shared", ("GET", "POST")),
    "samples:sample-detail": ("page", ("GET",)),
    "samples:sample-split": ("page", ("POST",)),
    "samples:exposure-add": ("page", ("POST",)),
    "depositions:recipe-list": ("page", ("GET",)),
    "depositions:recipe-create": ("page", ("GET", "POST")),
    "depositions:recipe-detail": ("page", ("GET",)),
    "depositions:run-list": ("page", ("GET",)),
    "depositions:run-create": ("page", ("GET", "POST")),
    "depositions:run-detail": ("page", ("GET", "POST")),
    "depositions:run-thickness-add": ("page", ("POST",)),
    "depositions:run-logs-upload": ("page", ("POST",)),
    "depositions:run-log-link": ("page", ("POST",)),
    "depositions:run-recheck": ("page", ("POST",)),
    "depositions:tool-list": ("page", ("GET",)),
    "depositions:tool-detail": ("page", ("GET",)),
    "depositions:tool-thresholds": ("page", ("GET", "POST")),
    "depositions:precursor-lot-list": ("page", ("GET",)),
    "depositions:anneal-list": ("page", ("GET",)),
    "depositions:anneal-create": ("page", ("GET", "POST")),
    "depositions:anneal-detail": ("page", ("GET", "POST")),
    "depositions:anneal-logs-upload": ("page", ("POST",)),
    "depositions:anneal-log-link": ("page", ("POST",)),
    "depositions:anneal-recheck": ("page", ("POST",)),
    "depositions:precursor-lot-runs": ("page", ("GET",)),
    "catalogue-index": ("page", ("GET",)),
    "catalogue-list": ("catalogue", ("GET",)),
    "catalogue-create": ("catalogue", ("GET", "POST")),
    "catalogue-detail": ("catalogue", ("GET",)),
    "catalogue-edit": ("catalogue", ("GET", "POST")),
    "schema": ("public", ("GET",)),  # the API's description, no data
    "swagger-ui": ("public", ("GET",)),
}

ALLOWED = frozenset({"ok", "invalid"})


def outcome(response: Any) -> str:
    """The class of an answer: what the matrix compares."""
    code = response.status_code
    if code in (301, 302, 303):
        location = response.get("Location", "")
        return "login" if "/login/" in location else "ok"
    if 200 <= code < 300:
        return "ok"
    return {
        400: "invalid",
        401: "auth",
        403: "forbidden",
        404: "hidden",
        405: "method",
        409: "invalid",
        413: "invalid",
        415: "invalid",
    }.get(code, f"error {code}")


def expected_api(kind: str, persona: str, *, detail: bool, safe: bool, mine: bool) -> set[str]:
    """``mine``: the object exists in the project (False: a placeholder id nobody sees)."""
    if persona == "anonymous":
        return {"auth"}
    if kind == "staff":  # refused before any lookup; staff then meet the placeholder id
        if persona != "staff":
            return {"forbidden"}
        return {"hidden"} if detail and not mine else set(ALLOWED)
    if kind == "manage":  # members: the project's people read them, its managers change them
        if persona == "instrument" or (not safe and persona not in ("manager", "staff")):
            return {"forbidden"}  # refused before any lookup
        return {"hidden"} if persona == "other" or not mine else set(ALLOWED)
    if persona == "instrument":
        if kind == "ingest" or (kind == "jobs" and safe and (mine or not detail)):
            return set(ALLOWED)
        return {"forbidden"} if kind != "jobs" or not detail else {"hidden"}
    if detail and not mine and kind != "catalogue":
        if not safe and persona == "viewer":
            return {"forbidden"}  # refused before the object is looked up
        return {"hidden"}
    if kind == "catalogue":
        if safe or persona == "staff":
            return set(ALLOWED)
        return {"forbidden"}
    if persona == "staff":
        return set(ALLOWED)
    if persona == "other":
        if detail:
            return {"hidden"}
        return set(ALLOWED) if safe else {"invalid", "forbidden"}
    if persona == "viewer" and not safe:
        return {"forbidden"}
    if persona == "mixed" and not safe:
        return {"forbidden"} if detail else {"invalid", "forbidden"}
    return set(ALLOWED)


def expected_page(kind: str, persona: str, *, detail: bool, safe: bool, mine: bool) -> set[str]:
    if kind == "public":
        return {"ok", "login"}  # logging out lands on the login page
    if persona in ("anonymous", "instrument"):  # a token does not log in to pages
        return {"login"}
    if kind == "staff":
        return {"ok"} if persona == "staff" else {"login"}
    if kind == "manage":  # the project page: its people read it, its managers change it
        if persona in ("manager", "staff"):
            return set(ALLOWED)
        if persona == "other":
            return {"hidden"}
        return set(ALLOWED) if safe else {"forbidden"}
    if detail and not mine:
        return {"hidden"}
    if persona == "staff":
        return set(ALLOWED)
    if kind == "personal":
        return set(ALLOWED)
    if kind == "shared":  # read by all, written by staff
        return set(ALLOWED) if safe else {"forbidden"}
    if detail and (persona == "other" or not mine):
        return {"forbidden"} if not safe and persona == "viewer" else {"hidden"}
    if persona == "viewer" and not safe:
        return {"forbidden"}
    if persona == "mixed" and not safe:
        return {"forbidden"} if detail else set(ALLOWED)  # a create form offers only B
    return set(ALLOWED)


# --- the world: one project's objects, people and a token --------------------------------------


@dataclass
class World:
    ids: dict[str, Any]  # path parameter values by resource
    people: dict[str, Any]
    token: str


def _ingest(path: Path, project: Any, instrument: Any = None, **params: Any) -> Any:
    from lims.ingestion import services as ingest

    with path.open("rb") as fh:
        job, _ = ingest.ingest_submit(
            stream=fh, filename=path.name, project=project, instrument=instrument, params=params
        )
    done = ingest.job_run(job_id=job.pk)
    assert done is not None and done.status == "succeeded", done and done.error
    return done


def _build_world(fixtures: Path) -> World:
    from django.contrib.auth import get_user_model

    from cells.models import CyclingTest, EisSpectrum
    from depositions import services as dep
    from depositions.models import (
        DepositionRun,
        PostTreatment,
        ProcessReference,
        Recipe,
        ThicknessMeasurement,
        Tool,
        ToolSource,
    )
    from lims import demo
    from lims import services as lims_services
    from lims.models import Membership, Project
    from samples import services as smp
    from samples.choices import MaterialClass
    from samples.models import Material, MaterialLot, Sample

    users = get_user_model().objects
    project = Project.objects.create(name="Matrix A", slug="matrix-a")
    other_project = Project.objects.create(name="Matrix B", slug="matrix-b")
    people: dict[str, Any] = {"anonymous": None}
    for role in ("viewer", "editor", "manager"):
        people[role] = users.create_user(f"m-{role}", password="pw-matrix-123")
        Membership.objects.create(project=project, user=people[role], role=role)
    people["other"] = users.create_user("m-other", password="pw-matrix-123")
    Membership.objects.create(project=other_project, user=people["other"], role="editor")
    people["mixed"] = users.create_user("m-mixed", password="pw-matrix-123")
    Membership.objects.create(project=project, user=people["mixed"], role="viewer")
    Membership.objects.create(project=other_project, user=people["mixed"], role="editor")
    people["staff"] = users.create_user("m-staff", password="pw-matrix-123", is_staff=True)

    demo.process_chain(project=project, user=people["editor"])
    token = lims_services.instrument_token_create(
        instrument_name="matrix-cycler", project=project, kind="cycler"
    )
    cell = project.cells.order_by("code").first()
    job = _ingest(
        fixtures / "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr",
        project,
        instrument=token.instrument,
        cell=cell.code,
    )
    pellet = Sample.objects.filter(project=project).order_by("code").first()
    _ingest(fixtures / "eis/impedance_exampleDataGamry.DTA", project, sample=pellet.code)
    chemical = dep.chemical_create(name="Matrix TMA", state="liquid")
    precursor = smp.material_create(name="Matrix TMA", material_class=MaterialClass.PRECURSOR)
    lot, _ = smp.lot_receive(
        project=project, material=precursor, lot_number="MX-1", quantity=Decimal("50")
    )
    bottle = dep.precursor_lot_create(material_lot=lot, chemical=chemical, bottle_label="MX-B1")
    tool = Tool.objects.filter(instrument__project=project).first()
    port = ToolSource.objects.filter(tool=tool).first()
    installation = dep.source_install(tool_source=port, precursor_lot=bottle)
    composition = dep.composition_measurement_add(
        sample=pellet, method="xps", fractions={"Li": 0.2, "Nb": 0.2, "O": 0.6}
    )
    film = dep.film_property_add(sample=pellet, ionic_conductivity_s_cm=1e-8)
    mapping = lims_services.column_mapping_save(
        project=project,
        name="matrix",
        mapping={"columns": {"t/s": {"quantity": "time_s", "unit": "s"}}},
    )
    spectrum = EisSpectrum.objects.get(project=project)
    test = CyclingTest.objects.get(job=job)
    run = DepositionRun.objects.filter(project=project).order_by("code").first()
    ids = {
        "ald-tools": tool.pk,
        "cells": cell.code,
        "chemicals": chemical.pk,
        "column-mappings": mapping.pk,
        "composition-measurements": composition.pk,
        "cycling-tests": test.pk,
        "deposition-runs": run.code,
        "eis-spectra": spectrum.pk,
        "film-properties": film.pk,
        "instruments": token.instrument.pk,
        "jobs": job.pk,
        "material-lots": MaterialLot.objects.filter(project=project).first().pk,
        "materials": Material.objects.first().pk,
        "post-treatments": PostTreatment.objects.filter(project=project).first().code,
        "precursor-lots": bottle.pk,
        "process-references": ProcessReference.objects.first().pk,
        "projects": project.pk,
        "raw-files": job.raw_file_id,
        "recipes": Recipe.objects.filter(project=project).first().pk,
        "run-log-files": None,  # none in the world: a placeholder id nobody sees
        "samples": pellet.code,
        "source-installations": installation.pk,
        "thickness-measurements": ThicknessMeasurement.objects.filter(sample__project=project)
        .first()
        .pk,
        "tool-sources": port.pk,
        "explorer-views": None,
        "events": None,  # staff-only routes: placeholder ids
        "deliveries": None,
        "webhooks": None,
        "lot": lot.pk,
        "project-slug": project.slug,
        "tokens": token.pk,
    }
    return World(ids=ids, people=people, token=token.key)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Built once for the module inside a transaction that is rolled back at the end."""
    fixtures = ROOT / "tests" / "fixtures"
    with django_db_blocker.unblock(), transaction.atomic():
        yield _build_world(fixtures)
        transaction.set_rollback(True)


def _client(world: World, persona: str, *, api: bool) -> Any:
    client = APIClient()
    if persona == "instrument":
        client.credentials(HTTP_AUTHORIZATION=f"Token {world.token}")
    elif persona != "anonymous":
        client.force_login(world.people[persona])
    return client


def _send(client: Any, method: str, url: str) -> str:
    with transaction.atomic():
        response = getattr(client, method.lower())(url)
        transaction.set_rollback(True)
    return outcome(response)


# --- the operations ----------------------------------------------------------------------------


def _schema_operations() -> list[tuple[str, str]]:
    schema = yaml.safe_load((ROOT / "schema.yml").read_text())
    return [
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _api_url(world: World, path: str) -> tuple[str, bool]:
    """The URL of a schema path with the world's object; False when it is a placeholder."""
    resource = path.removeprefix("/api/v1/").split("/", 1)[0]
    if "{" not in path:
        return path, True
    path = path.replace("{username}", "m-viewer")
    value = world.ids["lot" if "{lot_id}" in path else resource]
    mine = value is not None
    value = 987654 if value is None else value
    for name in ("{id}", "{code}", "{lot_id}"):
        path = path.replace(name, str(value))
    return path, mine


def _page_routes(patterns: Any = None, prefix: str = "", ns: str = "") -> list[tuple[str, str]]:
    out = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            if str(entry.pattern) in ("admin/", "api/v1/"):
                continue  # admin: Django's own staff check; api/v1: the schema
            name = ns + (f"{entry.namespace}:" if entry.namespace else "")
            out += _page_routes(entry.url_patterns, prefix + str(entry.pattern), name)
        elif isinstance(entry, URLPattern) and entry.name:
            out.append((ns + entry.name, prefix + str(entry.pattern)))
    return out


def _page_urls(world: World) -> list[tuple[str, str, str, bool, bool]]:
    """(name, kind, url, detail, mine) for every page, catalogue lists expanded."""
    from django.urls import reverse

    from lims.catalogue import REGISTRY

    ids = world.ids
    kwargs: dict[str, dict[str, Any]] = {
        "job-detail": {"pk": ids["jobs"]},
        "job-status": {"pk": ids["jobs"]},
        "job-rerun": {"pk": ids["jobs"]},
        "cells:cells-from-lot": {"lot_id": ids["lot"]},
        "cells:explorer-export": {"fmt": "csv"},
        "cells:explorer-view": {"pk": 987654},
        "cells:explorer-bottle": {"pk": ids["precursor-lots"]},
        "cells:spectrum-detail": {"pk": ids["eis-spectra"]},
        "cells:spectrum-refit": {"pk": ids["eis-spectra"]},
        "cells:spectrum-link": {"pk": ids["eis-spectra"]},
        "cells:cell-detail": {"code": ids["cells"]},
        "cells:cell-edit": {"code": ids["cells"]},
        "cells:cycling-test-chain": {
            "code": ids["cells"],
            "pk": ids["cycling-tests"],
            "action": "detach",
        },
        "samples:sample-detail": {"code": ids["samples"]},
        "samples:sample-split": {"code": ids["samples"]},
        "samples:exposure-add": {"code": ids["samples"]},
        "depositions:recipe-detail": {"pk": ids["recipes"]},
        "depositions:tool-detail": {"pk": ids["ald-tools"]},
        "depositions:tool-thresholds": {"pk": ids["ald-tools"]},
        "depositions:precursor-lot-runs": {"pk": ids["precursor-lots"]},
    }
    for name in ("run-detail", "run-thickness-add", "run-logs-upload", "run-log-link"):
        kwargs[f"depositions:{name}"] = {"code": ids["deposition-runs"]}
    kwargs["depositions:run-recheck"] = {"code": ids["deposition-runs"]}
    slug = ids["project-slug"]
    for name in ("project-detail", "project-member-set", "project-token-issue"):
        kwargs[name] = {"slug": slug}
    kwargs["project-member-remove"] = {"slug": slug, "username": "m-viewer"}
    kwargs["project-token-revoke"] = {"slug": slug, "pk": ids["tokens"]}
    for name in ("anneal-detail", "anneal-logs-upload", "anneal-log-link", "anneal-recheck"):
        kwargs[f"depositions:{name}"] = {"code": ids["post-treatments"]}
    out = []
    for name, _ in _page_routes():
        kind = PAGES[name][0]
        if name.startswith("catalogue-") and name != "catalogue-index":
            for slug, entry in REGISTRY.items():
                obj = entry.queryset(world.people["editor"]).first()
                shared = entry.staff_only_writes
                args: dict[str, Any] = {"slug": slug}
                if name in ("catalogue-detail", "catalogue-edit"):
                    args["pk"] = obj.pk if obj is not None else 987654
                unwritable = (name == "catalogue-create" and entry.create is None) or (
                    name == "catalogue-edit" and entry.update is None
                )
                page_kind = "unwritable" if unwritable else ("shared" if shared else "page")
                detail = "pk" in args and not shared
                out.append(
                    (
                        f"{name}:{slug}",
                        page_kind,
                        reverse(name, kwargs=args),
                        detail,
                        obj is not None,
                    )
                )
            continue
        args = kwargs.get(name, {})
        mine = 987654 not in args.values()
        out.append((name, kind, reverse(name, kwargs=args), bool(args) and "fmt" not in args, mine))
    return sorted(out, key=lambda row: row[0] == "logout")  # logging out last


def test_every_endpoint_has_an_entry():
    operations = {path for _, path in _schema_operations()}
    assert operations == set(API), "add the new endpoint to API (or drop the stale entry)"
    pages = {name for name, _ in _page_routes()}
    assert pages == set(PAGES), "add the new page to PAGES (or drop the stale entry)"


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
def test_api_matrix(world, persona):
    client = _client(world, persona, api=True)
    wrong = []
    for method, path in _schema_operations():
        url, mine = _api_url(world, path)
        safe = method == "GET"
        want = expected_api(API[path], persona, detail="{" in path, safe=safe, mine=mine)
        got = _send(client, method, url)
        if got not in want:
            wrong.append(f"{method} {url}: {got}, expected {' or '.join(sorted(want))}")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
def test_page_matrix(world, persona):
    client = _client(world, persona, api=False)
    wrong = []
    for name, kind, url, detail, mine in _page_urls(world):
        base = name.split(":")[0] if name.startswith("catalogue-") else name
        if kind == "public" and persona not in ("anonymous", "staff") and name != "logout":
            continue  # the same answer for everyone (the schema alone takes 1.5 s to build)
        for method in PAGES[base][1]:
            # the catalogue's create and edit forms are shown only to who may write
            safe = method == "GET" and base not in ("catalogue-create", "catalogue-edit")
            if kind == "unwritable":
                want = {"login"} if persona in ("anonymous", "instrument") else {"hidden"}
            else:
                want = expected_page(kind, persona, detail=detail, safe=safe, mine=mine)
            got = _send(client, method, url)
            if got not in want:
                wrong.append(f"{method} {url}: {got}, expected {' or '.join(sorted(want))}")
    assert wrong == [], "\n".join(wrong)


def test_outcome_classes():
    """The classes the matrix compares (a redirect to the login page is not a success)."""

    class R(dict):
        def __init__(self, code: int, location: str = "") -> None:
            super().__init__(Location=location)
            self.status_code = code

    assert outcome(R(302, "/login/?next=/cells/")) == "login"
    assert outcome(R(302, "/cells/C-1/")) == "ok"
    assert outcome(R(400)) == "invalid" and outcome(R(404)) == "hidden"
    assert outcome(R(500)) == "error 500"
