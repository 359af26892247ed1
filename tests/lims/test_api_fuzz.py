"""Schema-driven fuzzing of every API operation against the committed ``schema.yml``.

Schemathesis reads the committed schema (not the one the code would build now, so a change
that is not regenerated and committed is caught as a mismatch) and sends requests generated
from it to the real app in process (WSGI, real PostgreSQL), as an editor of the project that
owns the authorization matrix's world (``tests/lims/test_authorization_matrix.py``). Path
parameters are either generated or one of the world's real objects, so detail routes answer
from real rows, not only 404s. Each answer must not be a 5xx, must have a status code the
schema documents, and its body must match the schema. Each request runs in a savepoint that is
rolled back, so a DELETE does not take the world away from the next one. The seed is fixed
and the number of examples per operation bounded: the same requests on every run.
"""

from __future__ import annotations

import os
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
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.lims.test_authorization_matrix import _build_world

ROOT = Path(__file__).resolve().parents[2]
# bounded for CI; LIMS_FUZZ_EXAMPLES=200 (and LIMS_FUZZ_SEED) for a deeper run by hand
EXAMPLES_PER_OPERATION = int(os.environ.get("LIMS_FUZZ_EXAMPLES", "8"))
SEED = int(os.environ.get("LIMS_FUZZ_SEED", "20261205"))

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "base-url": "http://localhost",
        "generation": {"deterministic": True, "max-examples": EXAMPLES_PER_OPERATION},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
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
    """The matrix's world, built once in a transaction rolled back at the end."""
    from rest_framework.authtoken.models import Token

    with django_db_blocker.unblock(), transaction.atomic():
        world = _build_world(ROOT / "tests" / "fixtures")
        REAL_IDS.update(world.ids)
        REAL_IDS["project-slug"] = "matrix-a"
        token = Token.objects.create(user=world.people["editor"])
        yield {"Authorization": f"Token {token.key}"}
        REAL_IDS.clear()
        transaction.set_rollback(True)


@pytest.mark.django_db
@schema.parametrize()
def test_api_fuzz(case, fuzz_world):
    with transaction.atomic():
        response = case.call(headers=fuzz_world)
        transaction.set_rollback(True)
    case.validate_response(
        response,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
        headers=fuzz_world,
    )
