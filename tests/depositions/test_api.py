"""REST: nested recipe create + expansion, frozen recipes, run flow, bottles, anneal logs,
permissions, scoping and constant query counts on list endpoints."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from depositions import services
from depositions.inputs import SegmentInput
from lims.models import Project
from samples import services as sample_services
from tests.depositions.factories import make_al2o3, make_linbox

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.depositions.urls")]
API = "/api/v1"


def step(kind, label, seconds):
    return {"kind": kind, "source_label": label, "duration_s": str(seconds)}


LINBOX = {
    "project": "assb",
    "name": "LiNbOx-api",
    "mode": "thermal",
    "target_material": "LiNbOx",
    "deposition_temperature_c": "235",
    "supercycle_repeats": 5,
    "subcycles": [
        {
            "name": "Li2O",
            "gpc_angstrom": "0.5",
            "steps": [
                step("pulse", "LiOtBu", 2),
                step("purge", "N2", 10),
                step("pulse", "H2O", 0.1),
                step("purge", "N2", 10),
            ],
        },
        {
            "name": "Nb2O5",
            "gpc_angstrom": "0.4",
            "steps": [
                step("pulse", "Nb(OEt)5", 3),
                step("purge", "N2", 10),
                step("pulse", "H2O", 0.1),
                step("purge", "N2", 10),
            ],
        },
    ],
    "blocks": [{"subcycle": "Li2O", "repeat": 1}, {"subcycle": "Nb2O5", "repeat": 4}],
    "pre_steps": [step("wait", "", 60)],
}


def test_recipe_create_nested_then_get_shows_the_expansion(user_client):
    created = user_client.post(f"{API}/recipes/", LINBOX, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert [sc["name"] for sc in body["subcycles"]] == ["Li2O", "Nb2O5"]
    assert [s["order"] for s in body["subcycles"][1]["steps"]] == [1, 2, 3, 4]
    assert body["blocks"] == [
        {"order": 1, "subcycle": "Li2O", "repeat": 1},
        {"order": 2, "subcycle": "Nb2O5", "repeat": 4},
    ]
    got = user_client.get(f"{API}/recipes/{body['id']}/").json()
    expansion = got["expansion"]
    assert expansion["pulses_per_source"] == {"LiOtBu": 5, "H2O": 25, "Nb(OEt)5": 20}
    assert expansion["planned_duration_s"] == pytest.approx(60 + 5 * 114.5)
    assert expansion["expected_thickness_nm"] == pytest.approx(1.05)
    assert expansion["composition"]["text"] == "Li2O:Nb2O5 = 1:4"
    assert got["pre_steps"][0]["kind"] == "wait" and got["version"] == 1
    window = user_client.get(f"{API}/recipes/{body['id']}/steps/?offset=1&limit=4").json()
    assert window["count"] == 1 + 100
    assert [r["source_label"] for r in window["results"]] == ["LiOtBu", "N2", "H2O", "N2"]
    assert window["results"][0]["start_s"] == 60.0


def test_one_subcycle_recipe_needs_no_block_list(user_client):
    payload = {
        "project": "assb",
        "name": "Al2O3-api",
        "supercycle_repeats": 100,
        "subcycles": [
            {
                "name": "Al2O3",
                "gpc_angstrom": "1.1",
                "steps": [
                    step("pulse", "TMA", 0.015),
                    step("purge", "N2", 20),
                    step("pulse", "H2O", 0.015),
                    step("purge", "N2", 20),
                ],
            }
        ],
    }
    body = user_client.post(f"{API}/recipes/", payload, format="json").json()
    assert body["expansion"]["pulses_per_source"] == {"TMA": 100, "H2O": 100}
    assert body["expansion"]["expected_thickness_nm"] == pytest.approx(11.0)


def test_a_recipe_of_two_subcycles_without_blocks_is_a_400(user_client):
    """``blocks`` is optional in the schema (one sub-cycle needs none); two without it were a
    500 (security review, finding 12)."""
    payload = {key: value for key, value in LINBOX.items() if key != "blocks"}
    response = user_client.post(f"{API}/recipes/", {**payload, "name": "no-blocks"}, format="json")
    assert response.status_code == 400, response.content
    assert "at least one supercycle block" in str(response.json())


def test_a_tool_written_over_the_api_answers_with_its_port_count(user_client, ald_tool):
    """``source_count`` is an annotation of the selector: the answer to a write has it too."""
    response = user_client.patch(f"{API}/ald-tools/{ald_tool.pk}/", {"chambers": 2}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["source_count"] == 2


def test_run_list_takes_any_iso_offset_as_its_instant(user_client, project, ald_tool):
    """PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 allows (``+16:00`` was a 500)."""
    started = timezone.now().replace(microsecond=0)
    services.run_create(
        project=project, code="R-TZ", tool=ald_tool, recipe=make_al2o3(project), started_at=started
    )
    just_before = (started - timedelta(seconds=1)).astimezone(
        timezone.get_fixed_timezone(16 * 60 + 30)
    )
    found = user_client.get(f"{API}/deposition-runs/", {"started_after": just_before.isoformat()})
    assert found.status_code == 200, found.content
    assert [r["code"] for r in found.json()["results"]] == ["R-TZ"]
    later = user_client.get(
        f"{API}/deposition-runs/",
        {
            "started_after": (started + timedelta(seconds=1))
            .astimezone(timezone.get_fixed_timezone(-(23 * 60 + 59)))
            .isoformat()
        },
    )
    assert later.status_code == 200 and later.json()["results"] == []
    out_of_range = user_client.get(
        f"{API}/deposition-runs/", {"started_after": "0001-01-01T00:00:00+16:00"}
    )
    assert out_of_range.status_code == 400, out_of_range.content


def test_bad_recipe_structure_is_a_400_with_the_reason(user_client):
    bad = {**LINBOX, "name": "bad", "blocks": [{"subcycle": "ZnO", "repeat": 1}]}
    response = user_client.post(f"{API}/recipes/", bad, format="json")
    assert response.status_code == 400
    assert "unknown sub-cycle 'ZnO'" in str(response.json())


def test_frozen_recipe_refuses_edits_over_the_api_and_new_version_works(
    user_client, project, ald_tool
):
    recipe = make_al2o3(project)
    services.run_create(project=project, code="R-9", tool=ald_tool, recipe=recipe)
    refused = user_client.patch(
        f"{API}/recipes/{recipe.pk}/", {"supercycle_repeats": 200}, format="json"
    )
    assert refused.status_code == 400 and "frozen" in str(refused.json())
    new = user_client.post(f"{API}/recipes/{recipe.pk}/new-version/", {}, format="json")
    assert new.status_code == 201
    assert (new.json()["version"], new.json()["frozen"]) == (2, False)
    edited = user_client.patch(
        f"{API}/recipes/{new.json()['id']}/", {"supercycle_repeats": 200}, format="json"
    )
    assert edited.status_code == 200
    assert edited.json()["expansion"]["pulses_per_source"] == {"TMA": 200, "H2O": 200}


def test_run_flow_over_the_api(user_client, project, ald_tool, nmc, wafer):
    recipe = make_al2o3(project)
    created = user_client.post(
        f"{API}/deposition-runs/",
        {"code": "R-2026.001", "project": "assb", "tool": ald_tool.pk, "recipe": recipe.pk},
        format="json",
    )
    assert created.status_code == 201, created.json()
    run = created.json()
    assert run["planned_cycles"] == 100 and run["status"] == "planned"
    assert run["recipe_snapshot"]["summary"]["pulses_per_source"] == {"TMA": 100, "H2O": 100}
    url = f"{API}/deposition-runs/R-2026.001"
    load = user_client.post(f"{url}/loads/", {"sample": "NMC-001", "mass_g": "12"}, format="json")
    assert load.status_code == 201
    user_client.post(f"{url}/loads/", {"sample": "W-001", "role": "witness"}, format="json")
    dose = user_client.get(f"{url}/dose-check/").json()
    assert dose["status"] == "short" and dose["total_area_m2"] == pytest.approx(6.0)
    refused = user_client.post(f"{url}/complete/", {}, format="json")
    assert refused.status_code == 400
    assert "cannot take 12 g from NMC-001: only 10 g remain" in str(refused.json())
    after = user_client.get(f"{url}/").json()
    assert after["status"] == "planned" and after["operation"] is None  # nothing was written
    nmc.refresh_from_db()
    assert nmc.remaining == Decimal("10")
    # a second run that loads what is really there completes
    second = user_client.post(
        f"{API}/deposition-runs/",
        {"code": "R-2026.002", "project": "assb", "tool": ald_tool.pk, "recipe": recipe.pk},
        format="json",
    )
    assert second.status_code == 201
    url2 = f"{API}/deposition-runs/R-2026.002"
    user_client.post(f"{url2}/loads/", {"sample": "NMC-001", "mass_g": "4"}, format="json")
    done = user_client.post(
        f"{url2}/complete/", {"actual_cycles": 100, "notes": "clean run"}, format="json"
    )
    assert done.status_code == 200, done.json()
    body = done.json()
    assert body["status"] == "completed" and body["operation"] is not None
    assert body["loads"][0]["output_sample"] == "NMC-001.R-2026.002"
    thickness = user_client.post(
        f"{API}/thickness-measurements/",
        {"sample": "NMC-001.R-2026.002", "method": "tem", "value_nm": "11.0"},
        format="json",
    )
    assert thickness.status_code == 201, thickness.json()
    assert thickness.json()["run"] == "R-2026.002"
    assert thickness.json()["gpc"]["gpc_angstrom"] == pytest.approx(1.1)
    assert user_client.get(f"{url2}/gpc/").json()[0]["cycles_source"] == "actual"


def test_runs_that_used_a_bottle_endpoint(user_client, project, ald_tool, tma_bottle):
    port = ald_tool.sources.get(label="P1")
    start = timezone.now() - timedelta(days=3)
    installed = user_client.post(
        f"{API}/source-installations/",
        {"tool_source": port.pk, "precursor_lot": tma_bottle.pk, "installed_at": start.isoformat()},
        format="json",
    )
    assert installed.status_code == 201, installed.json()
    recipe = make_al2o3(project)
    for code in ("R-A", "R-B"):
        services.run_create(project=project, code=code, tool=ald_tool, recipe=recipe)
    runs = user_client.get(f"{API}/precursor-lots/{tma_bottle.pk}/runs/").json()
    assert {r["code"] for r in runs["results"]} == {"R-A", "R-B"}
    assert runs["results"][0]["precursors"][0]["bottle_label"] == "B-017"
    at = user_client.get(
        f"{API}/tool-sources/{port.pk}/lot-at/", {"at": (start + timedelta(hours=1)).isoformat()}
    )
    assert at.status_code == 200 and at.json()["bottle_label"] == "B-017"
    before = user_client.get(
        f"{API}/tool-sources/{port.pk}/lot-at/", {"at": (start - timedelta(hours=1)).isoformat()}
    )
    assert before.status_code == 404
    listed = user_client.get(f"{API}/precursor-lots/", {"chemical": "TMA"}).json()
    assert listed["results"][0]["installed_on"].endswith("P1 (TMA)")


def test_chemicals_are_found_by_synonym(user_client, admin_user, tma):
    found = user_client.get(f"{API}/chemicals/", {"q": "TMA"}).json()["results"]
    assert [c["name"] for c in found] == ["trimethylaluminum"]
    chemical = {"name": "lithium tert-butoxide", "synonyms": ["LiOtBu"], "state": "solid"}
    refused = user_client.post(f"{API}/chemicals/", chemical, format="json")
    assert refused.status_code == 403  # a shared catalogue: staff write it
    staff = APIClient()
    staff.force_authenticate(admin_user)
    created = staff.post(f"{API}/chemicals/", chemical, format="json")
    assert created.status_code == 201
    assert user_client.get(f"{API}/chemicals/", {"q": "liotbu"}).json()["count"] == 1


def test_process_references_read_for_all_write_for_staff(user_client, user):
    listed = user_client.get(f"{API}/process-references/", {"q": "LiNbOx"}).json()
    assert listed["count"] >= 1 and "pairing approximate" in listed["results"][0]["source"]
    row = {"key": "zro2-temazr-h2o", "material": "ZrO2", "source": "our own XRR, 2026"}
    assert user_client.post(f"{API}/process-references/", row, format="json").status_code == 403
    user.is_staff = True
    user.save()
    assert user_client.post(f"{API}/process-references/", row, format="json").status_code == 201


def test_post_treatment_with_segments_and_completion(user_client, project, nmc):
    created = user_client.post(
        f"{API}/post-treatments/",
        {
            "code": "AN-100",
            "project": "assb",
            "atmosphere": "o2",
            "segments": [
                {"kind": "ramp", "target_c": "600", "rate_k_per_min": "5"},
                {"kind": "dwell", "target_c": "600", "duration_min": "120"},
                {"kind": "cool", "target_c": "25", "rate_k_per_min": "5"},
            ],
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["profile"]["dwells"][0]["duration_s"] == 7200
    url = f"{API}/post-treatments/AN-100"
    done = user_client.post(
        f"{url}/complete/", {"inputs": [{"sample": "NMC-001", "quantity": "3"}]}, format="json"
    )
    assert done.status_code == 200, done.json()
    assert done.json()["status"] == "completed" and done.json()["furnace_logs"] == []


def test_other_projects_are_invisible(user_client, project, ald_tool):
    other = Project.objects.create(name="Other", slug="other")
    recipe = make_al2o3(other, name="secret")
    assert user_client.get(f"{API}/recipes/{recipe.pk}/").status_code == 404
    denied = user_client.post(f"{API}/recipes/", {**LINBOX, "project": "other"}, format="json")
    missing = user_client.post(f"{API}/recipes/", {**LINBOX, "project": "nope"}, format="json")
    assert denied.status_code == missing.status_code == 400  # not yours = does not exist
    assert denied.json()["project"] == [
        m.replace("nope", "other") for m in missing.json()["project"]
    ]
    assert APIClient().get(f"{API}/recipes/").status_code in (401, 403)


def _count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def _populate(project, tool, n: int, start: int) -> None:
    recipe = make_linbox(project, name=f"LiNbOx-{start}")
    sample_services.material_create(name=f"Si-{start}", material_class="substrate")
    for i in range(start, start + n):
        run = services.run_create(project=project, code=f"QC-{i}", tool=tool, recipe=recipe)
        wafer = sample_services.sample_create(
            project=project, code=f"QW-{i}", kind="wafer", quantity=Decimal(1), unit="count"
        )
        services.run_load_add(run=run, sample=wafer, role="witness")
        services.run_complete(run=run)
        services.thickness_measurement_add(
            sample=run.loads.get().output_sample, method="xrr", value_nm=Decimal("1")
        )
        make_al2o3(project, name=f"Al2O3-{i}")
        services.post_treatment_create(
            project=project,
            code=f"QA-{i}",
            atmosphere="o2",
            segments=[
                SegmentInput("ramp", Decimal("400"), rate_k_per_min=Decimal("10")),
                SegmentInput("dwell", Decimal("400"), duration_min=Decimal("60")),
            ],
        )


def test_list_endpoints_run_a_constant_number_of_queries(user_client, project, ald_tool):
    urls = [
        f"{API}/deposition-runs/",
        f"{API}/recipes/",
        f"{API}/thickness-measurements/",
        f"{API}/post-treatments/",
        f"{API}/tool-sources/",
    ]
    _populate(project, ald_tool, 3, 0)
    small = {url: _count_queries(user_client, url) for url in urls}
    _populate(project, ald_tool, 27, 100)
    large = {url: _count_queries(user_client, url) for url in urls}
    assert large == small
