"""The OpenAPI schema's view class: drf-spectacular's, with the error answers documented.

Every operation can answer with an error as well as its success, and a client (or a
schema-driven fuzzer, ``tests/lims/test_api_fuzz.py``) needs to know which and in what shape.
Rather than decorating each view, the errors follow from what an operation is: an unsafe
method or query parameters can be refused (400), a path parameter, a page number or a cursor can
miss (404), an operation behind authentication can be unauthenticated (401) or refused (403), and
a body in a media type the operation does not read is refused (415).
The bodies are what ``lims.api.exceptions.exception_handler`` writes (DRF's shapes): ``detail``
for 401/403/404/415, and for 400 the invalid fields with their messages (or a list of messages).
An answer an operation documents itself (``@extend_schema``) is kept as it is.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiResponse
from rest_framework.permissions import AllowAny

ERROR_DETAIL = {
    "type": "object",
    "description": "Why the request was refused.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERROR = {
    "description": "The invalid fields, each with its messages (nested as the request is); "
    "``detail`` or ``non_field_errors`` when no one field is at fault; or a list of messages.",
    "oneOf": [
        {"type": "object", "additionalProperties": {}},
        {"type": "array", "items": {"type": "string"}},
    ],
}
# status code: (response component, its schema component, description)
ERRORS = {
    "400": ("BadRequest", "ValidationError", "Invalid input: the fields at fault and why"),
    "401": ("Unauthorized", "ErrorDetail", "No valid credentials"),
    "403": (
        "Forbidden",
        "ErrorDetail",
        "Not allowed: the role in the project, an instrument token, or staff only",
    ),
    "404": ("NotFound", "ErrorDetail", "No such object in the projects you belong to"),
    "415": ("UnsupportedMediaType", "ErrorDetail", "A body in a Content-Type not listed here"),
}
SCHEMAS = {"ErrorDetail": ERROR_DETAIL, "ValidationError": VALIDATION_ERROR}


def error_answer(code: int, description: str) -> OpenApiResponse:
    """For ``@extend_schema(responses=...)`` of an operation that gives an error the rules
    above do not foresee (a 404 for an object named in a query parameter)."""
    return OpenApiResponse({"$ref": f"#/components/schemas/{ERRORS[str(code)][1]}"}, description)


class AutoSchema(SpectacularAutoSchema):
    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation["responses"]
        for code in self._error_codes(operation):
            if code not in responses:
                responses[code] = self._error_response(code)
        return operation

    def _error_response(self, code: str) -> dict[str, Any]:
        """A reference to a shared response component (one definition, not one per operation)."""
        name, schema_name, description = ERRORS[code]
        body = ResolvedComponent(
            name=schema_name,
            type=ResolvedComponent.SCHEMA,
            schema=SCHEMAS[schema_name],
            object=schema_name,
        )
        self.registry.register_on_missing(body)
        response = ResolvedComponent(
            name=name,
            type=ResolvedComponent.RESPONSE,
            schema={
                "description": description,
                "content": {"application/json": {"schema": body.ref}},
            },
            object=name,
        )
        self.registry.register_on_missing(response)
        return response.ref

    def _error_codes(self, operation: dict[str, Any]) -> list[str]:
        where = {p["in"] for p in operation.get("parameters", [])}
        names = {p["name"] for p in operation.get("parameters", [])}
        codes = []
        if self.method not in ("GET", "HEAD", "OPTIONS") or "query" in where:
            codes.append("400")
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += ["401", "403"]
        if "path" in where or names & {"page", "cursor"}:  # DRF: "Invalid page/cursor."
            codes.append("404")
        if "requestBody" in operation:
            codes.append("415")
        return codes
