"""Schema-driven fuzzing of every API operation against the committed ``schema.yml``.

Schemathesis generates requests from the committed schema (the one clients read; ``make test``
checks it is current) and sends them to the real app in process (WSGI, real PostgreSQL), as an
editor of the authorization matrix's world (``tests/lims/test_authorization_matrix.py``). Half
the path parameters and half the body fields that name an object (project, sample, tool...)
are the world's real ones, so detail routes answer from real rows and writes get past the
lookups into the services. Each answer must not be a 5xx, must have a status code and a
Content-Type the schema documents, and its body must match the schema. Each request runs in a
savepoint that is rolled back, so a DELETE does not take the world away from the next one.
The seed is fixed and the examples per operation bounded: the same requests on every run.
A deeper run by hand: ``LIMS_FUZZ_EXAMPLES=200 LIMS_FUZZ_SEED=<n> LIMS_FUZZ_COVERAGE=1``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.lims.test_authorization_matrix import _build_world

ROOT = Path(__file__).resolve().parents[2]
# bounded for CI (about a minute); see the module docstring for a deeper run
EXAMPLES_PER_OPERATION = int(os.environ.get("LIMS_FUZZ_EXAMPLES", "15"))
SEED = int(os.environ.get("LIMS_FUZZ_SEED", "20261205"))

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "base-url": "http://localhost",
        # the same requests on every run: no example database replaying earlier failures
        "generation": {
            "deterministic": True,
            "database": "none",
            "max-examples": EXAMPLES_PER_OPERATION,
        },
        # coverage: schemathesis' boundary values of every parameter (slow; on for a deep run)
        "phases": {
            "coverage": {"enabled": os.environ.get("LIMS_FUZZ_COVERAGE") == "1"},
            "stateful": {"enabled": False},
        },
    }
)
schema = schemathesis.openapi.from_path(ROOT / "schema.yml", config=CONFIG)

# the world's path parameter values by resource, filled by the ``fuzz_world`` fixture
REAL_IDS: dict[str, Any] = {}
# body fields that name an object, by the world's resource (or a value of its own: project)
BODY_REFERENCES = {
    "project": "project-slug",
    "sample": "samples",
    "cathode_sample": "samples",
    "se_sample": "samples",
    "anode_sample": "samples",
    "cell": "cells",
    "tool": "ald-tools",
    "instrument": "instruments",
    "recipe": "recipes",
    "run": "deposition-runs",
    "material": "materials",
    "lot": "lot",
    "material_lot": "lot",
    "chemical": "chemicals",
    "tool_source": "tool-sources",
    "precursor_lot": "precursor-lots",
    "process_reference": "process-references",
    "job": "jobs",
}


class InProcessApp:
    """Django's WSGI handler without the per-request connection housekeeping.

    Django closes a connection that is not in autocommit at the end of each request; here the
    request runs inside the test's transaction, which must survive it (Django's test client
    disconnects the same signal handler).
    """

    handler: WSGIHandler | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.handler is None:
            self.handler = WSGIHandler()
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = self.handler(environ, start_response)
            try:
                return list(response)
            finally:
                response.close()  # request_finished: uploads' temp files are closed
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)


schema.app = InProcessApp()


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    """Half the cases address one of the world's objects instead of a generated id."""
    if not path_parameters:
        return st.just(path_parameters)
    path = context.operation.path
    resource = path.removeprefix("/api/v1/").split("/", 1)[0]
    real = dict(path_parameters)
    for name in path_parameters:
        value = REAL_IDS.get("lot" if name == "lot_id" else resource)
        if value is not None:
            real[name] = value
    if real == path_parameters:
        return st.just(path_parameters)
    return st.sampled_from([real, path_parameters])


def _with_real_references(value: Any) -> Any:
    """The body with every field that names an object (at any depth) naming one of the
    world's, where the generated value has the type of the real one."""
    if isinstance(value, list):
        return [_with_real_references(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        real = REAL_IDS.get(BODY_REFERENCES.get(key, ""))
        if real is not None and type(real) is type(item):
            out[key] = real
        else:
            out[key] = _with_real_references(item)
    return out


@schema.hook
def flatmap_body(context: Any, body: Any) -> Any:
    """Half the bodies name the world's project, samples, tools... so that writes get past
    the lookups (a generated slug is never a project) and reach the services."""
    real = _with_real_references(body)
    if real == body:
        return st.just(body)
    return st.sampled_from([real, body])


@pytest.fixture(scope="module")
def fuzz_world(django_db_setup, django_db_blocker):
    """The matrix's world, built once in a transaction rolled back at the end; the
    ``Authorization`` header of each persona that fuzzes."""
    from rest_framework.authtoken.models import Token

    with django_db_blocker.unblock(), transaction.atomic():
        world = _build_world(ROOT / "tests" / "fixtures")
        REAL_IDS.update(world.ids)
        REAL_IDS["project-slug"] = "matrix-a"
        yield {
            persona: {"Authorization": f"Token {Token.objects.create(user=person).key}"}
            for persona, person in world.people.items()
            if persona in ("editor", "staff")
        }
        REAL_IDS.clear()
        transaction.set_rollback(True)


def _send_and_check(case: Any, headers: dict[str, str]) -> None:
    with transaction.atomic():
        response = case.call(headers=headers)
        transaction.set_rollback(True)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        headers=headers,
    )


@pytest.mark.django_db
@schema.parametrize()
def test_api_fuzz(case, fuzz_world):
    """Every operation as an editor of the world's project."""
    _send_and_check(case, fuzz_world["editor"])


def _staff_only(ctx: Any) -> bool:
    """What an editor is refused (403) and only staff get past: the installation-wide events,
    deliveries and webhooks, and writes to the shared catalogues."""
    path, method = ctx.operation.path, ctx.operation.method.upper()
    if re.match(r"/api/v1/(events|deliveries|webhooks)/", path):
        return True
    return bool(re.match(r"/api/v1/(chemicals|materials|process-references)/", path)) and (
        method != "GET"
    )


@pytest.mark.django_db
@schema.include(_staff_only).parametrize()
def test_api_fuzz_staff(case, fuzz_world):
    """The operations an editor cannot pass, as staff."""
    _send_and_check(case, fuzz_world["staff"])


# --- what the fuzzer found, pinned -------------------------------------------------------------


def test_every_operation_documents_its_errors():
    """``lims.api.schema.AutoSchema``: the error answers are in the committed schema."""
    raw = schema.raw_schema
    for path, item in raw["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            want = {"401", "403"}
            if "{" in path:
                want.add("404")
            if "requestBody" in operation:
                want |= {"400", "415"}
            assert want <= codes, f"{method.upper()} {path}: {sorted(want - codes)} missing"
    assert {"BadRequest", "NotFound"} <= set(raw["components"]["responses"])


def test_the_gpc_rows_are_answered_whole():
    """The run's ``gpc/`` answer goes through a serializer (the schema documents it): one
    field per field of the selector's row, so a new one is not dropped unseen."""
    from dataclasses import fields

    from depositions.api.serializers import MeasuredGPCSerializer
    from depositions.selectors import MeasuredGPC

    assert list(MeasuredGPCSerializer().fields) == [f.name for f in fields(MeasuredGPC)]


@pytest.mark.django_db
def test_a_nul_in_a_form_field_is_a_400(user_client):
    """JSON bodies were checked; a form field naming a sample by code reached PostgreSQL."""
    url = "/api/v1/thickness-measurements/"
    multipart = user_client.post(url, {"sample": "S\x00", "value_nm": "5"})
    urlencoded = user_client.post(
        url, "sample=S%00&value_nm=5", content_type="application/x-www-form-urlencoded"
    )
    for response in (multipart, urlencoded):
        assert response.status_code == 400, response.content
        assert "NUL" in response.json()["detail"]


@pytest.mark.django_db
def test_an_unknown_api_url_answers_in_the_api_shape(client, user):
    client.force_login(user)
    api = client.get("/api/v1/ald-tools/1.5/")  # an id route: no route matches
    assert api.status_code == 404 and api.json() == {"detail": "Not found."}
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
