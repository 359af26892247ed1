"""Instrument tokens: ``Authorization: Token <key>`` scoped to one instrument's project."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from lims.models import InstrumentToken
from lims.services import stamp_recent


class InstrumentUser(AnonymousUser):
    """Stands in for a person when an instrument calls: authenticated, no privileges."""

    def __init__(self, token: InstrumentToken) -> None:
        super().__init__()
        self.token = token
        self.instrument = token.instrument

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    def __str__(self) -> str:
        return f"instrument:{self.instrument.name}"


class InstrumentTokenAuthentication(authentication.TokenAuthentication):
    """Tried before user tokens; a key that is not an instrument's falls through to them."""

    def authenticate_credentials(self, key: str) -> Any:
        token = (
            InstrumentToken.objects.select_related("instrument__project")
            .filter(key=key, revoked=False)
            .first()
        )
        if token is None:
            return None
        stamp_recent(instance=token, field="last_used_at")
        return (InstrumentUser(token), token)

    def authenticate(self, request: Request) -> Any:
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            return None


class InstrumentTokenScheme(OpenApiAuthenticationExtension):
    target_class = "lims.api.authentication.InstrumentTokenAuthentication"
    name = "instrumentToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Instrument key, as `Token <key>` (from create_instrument_token).",
        }
