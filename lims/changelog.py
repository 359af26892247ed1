"""Change logging (NetBox ObjectChange + Nautobot change context).

The current actor, context and request/job id live in a contextvar set by the middleware
(web/api/admin), by tasks (ingest) and defaulting to "shell". Model signals write one
``ObjectChange`` per create/update/delete of a domain model, so services stay free of
bookkeeping and nothing that saves can forget it.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core import serializers
from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save
from django.http import HttpRequest, HttpResponse

LOGGED_APPS = {"lims", "samples", "depositions", "cells"}
NOT_LOGGED = {
    "lims.objectchange",
    "lims.outboxevent",
    "lims.eventdelivery",
    "lims.deliveryattempt",
    "lims.ingestionjob",
    "lims.rawfile",
    "lims.workerheartbeat",
    "lims.instrumenttoken",
}


@dataclass(frozen=True)
class ChangeContext:
    context: str
    request_id: str
    user: Any = None
    reason: str = ""


_current: ContextVar[ChangeContext | None] = ContextVar("lims_change_context", default=None)


def current() -> ChangeContext:
    ctx = _current.get()
    return ctx or ChangeContext(context="shell", request_id=f"shell-{uuid.uuid4().hex[:12]}")


@contextmanager
def change_context(
    context: str, *, user: Any = None, request_id: str | None = None, reason: str = ""
) -> Iterator[ChangeContext]:
    ctx = ChangeContext(
        context=context, request_id=request_id or uuid.uuid4().hex, user=user, reason=reason
    )
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


class ChangeContextMiddleware:
    """Tags every change made while serving a request with its user and a request id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        kind = (
            "admin" if path.startswith("/admin/") else "api" if path.startswith("/api/") else "web"
        )
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        # DRF authenticates lazily inside the view: resolve the user at write time instead.
        with change_context(kind, user=_LazyUser(request), request_id=request_id):
            response = self.get_response(request)
        response["X-Request-Id"] = request_id
        return response


class _LazyUser:
    def __init__(self, request: HttpRequest) -> None:
        self.request = request

    def resolve(self) -> Any:
        return getattr(self.request, "user", None)


def _is_logged(sender: type[models.Model]) -> bool:
    meta = sender._meta
    return (
        meta.app_label in LOGGED_APPS
        and meta.label_lower not in NOT_LOGGED
        and getattr(sender, "change_logged", True)
    )


def _snapshot(instance: models.Model) -> dict[str, Any]:
    data: dict[str, Any] = serializers.serialize("python", [instance])[0]["fields"]
    for name in getattr(instance, "change_log_redacted", ()):  # secrets: a keyed fingerprint
        if data.get(name):
            digest = hmac.new(settings.SECRET_KEY.encode(), str(data[name]).encode(), "sha256")
            data[name] = f"redacted:{digest.hexdigest()[:16]}"
    return data


def _pre_save(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    if not _is_logged(sender) or kwargs.get("raw"):
        return
    before = None
    if instance.pk is not None:
        old = sender._default_manager.filter(pk=instance.pk).first()
        before = _snapshot(old) if old is not None else None
    instance._lims_prechange = before  # type: ignore[attr-defined]


def _record(instance: models.Model, action: str, before: Any, after: Any) -> None:
    from django.contrib.contenttypes.models import ContentType

    from lims.models import ObjectChange

    ctx = current()
    actor = ctx.user.resolve() if isinstance(ctx.user, _LazyUser) else ctx.user
    # People are linked; an instrument token (or anonymous) is recorded by name only.
    user = actor if isinstance(actor, AbstractBaseUser) and actor.is_authenticated else None
    ObjectChange.objects.create(
        user=user,  # type: ignore[misc]
        user_name=(getattr(user, "username", "") or str(actor or ""))[:150],
        context=ctx.context,
        request_id=ctx.request_id,
        action=action,
        content_type=ContentType.objects.get_for_model(type(instance)),
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        prechange=before,
        postchange=after,
        reason=ctx.reason[:500],
    )


def _post_save(
    sender: type[models.Model], instance: models.Model, created: bool, **kwargs: Any
) -> None:
    if not _is_logged(sender) or kwargs.get("raw"):
        return
    before = getattr(instance, "_lims_prechange", None)
    after = _snapshot(instance)
    if not created and before is not None:
        volatile = {f.name for f in sender._meta.fields if getattr(f, "auto_now", False)}
        if {k: v for k, v in before.items() if k not in volatile} == {
            k: v for k, v in after.items() if k not in volatile
        }:
            return  # nothing but timestamps changed
    _record(instance, "create" if created else "update", before, after)


def _post_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    if _is_logged(sender):
        _record(instance, "delete", _snapshot(instance), None)


def connect_signals() -> None:
    pre_save.connect(_pre_save, dispatch_uid="lims_changelog_pre")
    post_save.connect(_post_save, dispatch_uid="lims_changelog_post")
    post_delete.connect(_post_delete, dispatch_uid="lims_changelog_delete")
