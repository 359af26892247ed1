"""Change logging (NetBox ObjectChange + Nautobot change context).

The current actor, context and request/job id live in a contextvar set by the middleware
(web/api/admin), by tasks (ingest) and defaulting to "shell". Model signals write one
``ObjectChange`` per create/update/delete of a domain model, so services stay free of
bookkeeping and nothing that saves can forget it.

The entries form a hash chain: each stores ``seq``, the previous entry's hash and the sha256 of
its own canonical content (which includes that previous hash). Appending takes a transaction
advisory lock (PostgreSQL; SQLite's write lock already serialises), reads the head and inserts
in the writer's own transaction, so concurrent writers never fork the chain and a rolled-back
change leaves no entry. ``chain_verify`` (``manage.py verify_audit``) recomputes it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.apps import apps as global_apps
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

LOGGED_APPS = {"lims", "samples", "depositions", "cells"}
NOT_LOGGED = {
    "lims.objectchange",
    "lims.outboxevent",
    "lims.eventdelivery",
    "lims.deliveryattempt",
    "lims.ingestionjob",
    "lims.rawfile",
    "lims.workerheartbeat",
}


REASON_HEADER = "X-LIMS-Reason"


@dataclass(frozen=True)
class ChangeContext:
    """Who (a person, and the instrument when a token or an ingest job acts), where from, which
    request or task, and why. ``user`` and ``reason`` may be resolved at write time (a web
    request authenticates and parses its body inside the view)."""

    context: str
    request_id: str
    user: Any = None
    reason: Any = ""
    instrument: str = ""


_current: ContextVar[ChangeContext | None] = ContextVar("lims_change_context", default=None)


def current() -> ChangeContext:
    ctx = _current.get()
    return ctx or ChangeContext(context="shell", request_id=f"shell-{uuid.uuid4().hex[:12]}")


def current_reason() -> str:
    """The "why" of the changes being made now ("" when nobody said)."""
    reason = current().reason
    return str(reason.resolve() if isinstance(reason, _LazyReason) else reason or "")


@contextmanager
def change_context(
    context: str,
    *,
    user: Any = None,
    request_id: str | None = None,
    reason: Any = "",
    instrument: str = "",
) -> Iterator[ChangeContext]:
    ctx = ChangeContext(
        context=context,
        request_id=request_id or uuid.uuid4().hex,
        user=user,
        reason=reason,
        instrument=instrument,
    )
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


@contextmanager
def change_actor(*, user: Any, instrument: str = "", reason: str = "") -> Iterator[ChangeContext]:
    """The same context and request id, acting for ``user`` (and ``instrument``): an ingest
    task names the instrument that sent the file and the person who owns its token."""
    ctx = current()
    with change_context(
        ctx.context,
        user=user,
        request_id=ctx.request_id,
        reason=reason or ctx.reason,
        instrument=instrument,
    ) as inner:
        yield inner


def note_reason(request: Any, data: Any) -> None:
    """Called by the API's body parsers: a write's ``reason`` field is its change-log reason
    (the ``X-LIMS-Reason`` header wins). ``request`` is DRF's or Django's request."""
    reason = data.get("reason") if hasattr(data, "get") else None
    if isinstance(reason, str) and reason.strip():
        target = getattr(request, "_request", request)
        target.lims_reason = reason.strip()


class ChangeContextMiddleware:
    """Tags every change made while serving a request with its user, a request id and the
    reason the client gave (``X-LIMS-Reason`` header or a ``reason`` field in the body)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        kind = (
            "admin" if path.startswith("/admin/") else "api" if path.startswith("/api/") else "web"
        )
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        # DRF authenticates lazily inside the view: resolve the user at write time instead.
        with change_context(
            kind, user=_LazyUser(request), request_id=request_id, reason=_LazyReason(request)
        ):
            response = self.get_response(request)
        response["X-Request-Id"] = request_id
        return response


class _LazyUser:
    def __init__(self, request: HttpRequest) -> None:
        self.request = request

    def resolve(self) -> Any:
        return getattr(self.request, "user", None)


class _LazyReason:
    def __init__(self, request: HttpRequest) -> None:
        self.request = request

    def resolve(self) -> str:
        header = self.request.headers.get(REASON_HEADER, "").strip()
        with suppress(UnicodeError):  # headers arrive as latin-1: a UTF-8 reason is recovered
            header = header.encode("latin-1").decode("utf-8")
        return header or str(getattr(self.request, "lims_reason", ""))


def _is_logged(sender: type[models.Model]) -> bool:
    """Live domain models only: a migration's historical models (their ``_meta.apps`` is the
    migration state, not the app registry) describe a schema the log's own table may not
    have yet, and their rows are data moves, not changes anyone made."""
    meta = sender._meta
    return (
        meta.apps is global_apps
        and meta.app_label in LOGGED_APPS
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


# The fields of an entry that its hash covers. ``user`` (a link that deleting the person nulls)
# and ``id`` are not covered: ``user_name`` is the record of who it was, ``seq`` the position.
HASHED_FIELDS = (
    "time",
    "user_name",
    "instrument_name",
    "context",
    "request_id",
    "action",
    "content_type",
    "object_id",
    "object_repr",
    "prechange",
    "postchange",
    "reason",
    "prev_hash",
)
CHAIN_VERSION = 1
VERIFY_WINDOW = 100_000
GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key of the chain head ("LIMSAUDT" as a signed 64-bit integer)
CHAIN_LOCK_KEY = int.from_bytes(b"LIMSAUDT", "big", signed=True)


def _json_normal(value: Any) -> Any:
    """The value as it reads back from a JSON column: DjangoJSONEncoder's strings for dates and
    decimals, and integral floats as ints (PostgreSQL's jsonb prints 1e16 as an integer)."""
    if isinstance(value, dict):
        return {str(k): _json_normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_normal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def json_roundtrip(value: Any) -> Any:
    """What a JSON column will give back for ``value`` (hash what is stored, not what was meant)."""
    if value is None:
        return None
    return _json_normal(json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


def entry_digest(fields: dict[str, Any]) -> str:
    """sha256 of an entry's canonical content: ``HASHED_FIELDS`` as sorted, compact JSON.

    ``content_type`` is the natural key ``app_label.model`` (ids differ between databases, e.g.
    after a restore); ``time`` is ISO 8601 in UTC with microseconds.
    """
    payload = {name: fields[name] for name in HASHED_FIELDS}
    payload["time"] = fields["time"].astimezone(UTC).isoformat(timespec="microseconds")
    payload["prechange"] = _json_normal(fields["prechange"])
    payload["postchange"] = _json_normal(fields["postchange"])
    payload["v"] = CHAIN_VERSION
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _chain_lock() -> None:
    """Serialise appends until the writer's transaction ends (PostgreSQL); SQLite's
    IMMEDIATE transactions already hold the database's one write lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


def _record(instance: models.Model, action: str, before: Any, after: Any) -> None:
    from django.contrib.contenttypes.models import ContentType

    from lims.models import ObjectChange

    ctx = current()
    actor = ctx.user.resolve() if isinstance(ctx.user, _LazyUser) else ctx.user
    instrument = ctx.instrument
    token = getattr(actor, "token", None)
    if token is not None:  # an instrument's token: the instrument, and the person who owns it
        instrument = instrument or token.instrument.name
        actor = token.owner or actor
    # People are linked; anonymous (or an owner-less token) is recorded by name only.
    user = actor if isinstance(actor, AbstractBaseUser) and actor.is_authenticated else None
    content_type = ContentType.objects.get_for_model(type(instance))
    entry = ObjectChange(
        user=user,  # type: ignore[misc]
        user_name=(getattr(user, "username", "") or str(actor or ""))[:150],
        context=ctx.context,
        request_id=ctx.request_id,
        action=action,
        content_type=content_type,
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        prechange=json_roundtrip(before),
        postchange=json_roundtrip(after),
        reason=current_reason()[:500],
        instrument_name=instrument[:200],
    )
    buffered = _BUFFER.get()
    if buffered is not None:
        # a no-op hook marks the entry: Django drops the hooks of a savepoint rolled back,
        # and with them the entries of the writes it undid
        marker = _Marker()
        transaction.on_commit(marker)
        buffered.append((entry, marker))
        return
    with transaction.atomic():
        _append([entry])


def _append(entries: list[Any]) -> None:
    """Link ``entries`` to the chain's head and insert them, under the chain's lock (held
    until the caller's transaction ends)."""
    from lims.models import ObjectChange

    _chain_lock()
    head = ObjectChange.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = head if head else (0, GENESIS_HASH)
    for entry in entries:
        seq += 1
        entry.seq, entry.prev_hash = seq, prev_hash
        entry.time = timezone.now()  # taken under the lock: time follows the chain
        fields = {name: getattr(entry, name) for name in HASHED_FIELDS if name != "content_type"}
        ct = entry.content_type
        entry.hash = entry_digest({**fields, "content_type": f"{ct.app_label}.{ct.model}"})
        prev_hash = entry.hash
    ObjectChange.objects.bulk_create(entries)


class _Marker:
    def __call__(self) -> None:
        pass


_BUFFER: ContextVar[list[tuple[Any, _Marker]] | None] = ContextVar(
    "lims_change_buffer", default=None
)


@contextmanager
def atomic_chain_at_end() -> Iterator[None]:
    """``transaction.atomic()`` whose change-log entries join the chain when the block ends,
    in one insert, instead of each as it is made.

    The chain's lock is held from an entry's append until the commit. An ingestion job's
    persist phase appends its first entry early and then works on (cycle rows, records,
    re-stitch), so two workers' persist phases ran one after the other (bench/load.py: ~15 %
    of two workers' throughput). Here the lock is taken at the end, for the insert only.
    Entries of writes a rolled-back savepoint undid are left out; an exception leaves
    nothing (the block rolls back). Nested: the outermost block appends.
    """
    from django.db import connection as conn

    with transaction.atomic():
        if _BUFFER.get() is not None:
            yield
            return
        buffer: list[tuple[Any, _Marker]] = []
        token = _BUFFER.set(buffer)
        try:
            yield
        finally:
            _BUFFER.reset(token)
        alive = {id(item[1]) for item in conn.run_on_commit}  # (savepoints, hook, robust)
        kept = [entry for entry, marker in buffer if id(marker) in alive]
        if kept:
            _append(kept)


@dataclass(frozen=True)
class ChainBreak:
    """The first entry where the chain does not hold, and what was done to it."""

    seq: int
    entry_id: int | None
    kind: str  # edited | deleted | reordered
    detail: str

    def __str__(self) -> str:
        return f"entry seq {self.seq} (id {self.entry_id}) {self.kind}: {self.detail}"


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head_seq: int
    head_hash: str
    first_break: ChainBreak | None


def _chain_rows(batch: int) -> Iterable[dict[str, Any]]:
    from lims.models import ObjectChange

    return (
        ObjectChange.objects.order_by("seq")
        .values("id", "seq", "hash", *(f for f in HASHED_FIELDS if f != "content_type"))
        .annotate(
            ct_app=models.F("content_type__app_label"), ct_model=models.F("content_type__model")
        )
        .iterator(chunk_size=batch)
    )


def chain_verify(*, batch: int = 2000) -> ChainReport:
    """Walk the chain in ``seq`` order and name the first entry that was edited (its content no
    longer gives its hash), deleted (a gap, or a link to no entry seen) or reordered (it links
    to an entry that comes later, or another entry took its place).

    Deleting the newest entries leaves a shorter, valid chain: compare ``head_seq`` and
    ``head_hash`` with a copy kept elsewhere (the command prints them for that).
    """
    prev_seq, prev_hash = 0, GENESIS_HASH
    # hash -> seq of the entries walked last (bounded: memory stays flat on a long chain), to
    # tell an entry moved later from a deleted one
    seen: dict[str, int] = {}
    recent: deque[str] = deque()
    count = 0
    rows = iter(_chain_rows(batch))
    for row in rows:
        count += 1
        ct = f"{row['ct_app']}.{row['ct_model']}"
        digest = entry_digest({**row, "content_type": ct})
        if digest != row["hash"]:
            return ChainReport(
                count,
                prev_seq,
                prev_hash,
                ChainBreak(
                    row["seq"],
                    row["id"],
                    "edited",
                    f"its content ({row['action']} {ct} {row['object_id']} at "
                    f"{row['time']:%Y-%m-%d %H:%M:%S}) no longer gives its stored hash",
                ),
            )
        if row["prev_hash"] != prev_hash:
            if row["prev_hash"] in seen:
                kind, detail = (
                    "reordered",
                    (f"it follows entry seq {seen[row['prev_hash']]}, not seq {prev_seq}"),
                )
            else:
                kind, detail = (
                    "deleted",
                    (
                        f"the entry it follows is missing (after seq {prev_seq}, "
                        f"{row['seq'] - prev_seq - 1} seq numbers skipped)"
                    ),
                )
            # a swapped pair: the later of them links to a hash only seen further on
            if kind == "deleted":
                ahead = _find_ahead(rows, row["prev_hash"])
                if ahead is not None:
                    kind = "reordered"
                    detail = f"it follows entry seq {ahead}, which comes later in the chain"
            return ChainReport(
                count, prev_seq, prev_hash, ChainBreak(row["seq"], row["id"], kind, detail)
            )
        if row["seq"] != prev_seq + 1:
            return ChainReport(
                count,
                prev_seq,
                prev_hash,
                ChainBreak(
                    row["seq"],
                    row["id"],
                    "reordered",
                    f"its seq was changed: it links to seq {prev_seq} but is numbered {row['seq']}",
                ),
            )
        seen[row["hash"]] = row["seq"]
        recent.append(row["hash"])
        if len(recent) > VERIFY_WINDOW:
            seen.pop(recent.popleft(), None)
        prev_seq, prev_hash = row["seq"], row["hash"]
    return ChainReport(count, prev_seq, prev_hash, None)


def _find_ahead(rows: Iterator[dict[str, Any]], wanted: str) -> int | None:
    """The seq of a later entry whose hash is ``wanted`` (reads on; only after a break)."""
    for row in rows:
        if row["hash"] == wanted:
            return int(row["seq"])
    return None


def _volatile(model: type[models.Model]) -> set[str]:
    """Fields whose change alone is bookkeeping, not a change anyone made: ``auto_now``
    timestamps and what a model lists in ``change_log_volatile`` (e.g. an instrument's
    last-file time)."""
    auto = {f.name for f in model._meta.fields if getattr(f, "auto_now", False)}
    return auto | set(getattr(model, "change_log_volatile", ()))


def _changed(model: type[models.Model], before: dict[str, Any], after: dict[str, Any]) -> bool:
    volatile = _volatile(model)
    return {k: v for k, v in before.items() if k not in volatile} != {
        k: v for k, v in after.items() if k not in volatile
    }


def _post_save(
    sender: type[models.Model], instance: models.Model, created: bool, **kwargs: Any
) -> None:
    if not _is_logged(sender) or kwargs.get("raw"):
        return
    before = getattr(instance, "_lims_prechange", None)
    after = _snapshot(instance)
    if not created and before is not None and not _changed(sender, before, after):
        return  # nothing but bookkeeping changed
    _record(instance, "create" if created else "update", before, after)


def _post_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    if _is_logged(sender):
        _record(instance, "delete", _snapshot(instance), None)


# --- the ORM's bulk paths --------------------------------------------------------------------
# ``QuerySet.update``, ``bulk_update`` and ``bulk_create`` send no model signals, so a service
# (or a shell) using them would change a logged model unseen. Django has no hook for them; a
# manager on each logged model would be forgotten on the next model, and related managers and
# ``_base_manager`` build plain querysets anyway. So ``update`` and ``bulk_create`` are wrapped
# once, here: for a logged model they snapshot the rows before and after and write one entry per
# changed row in the same transaction. ``bulk_update`` is a batch of ``update`` calls, and
# deletes send signals per row (Django's collector does not fast-delete while receivers are
# connected), so both are covered. Unlogged models take the plain path unchanged.
_plain_update = models.QuerySet.update
_plain_bulk_create = models.QuerySet.bulk_create


def _locked_snapshots(model: type[models.Model], db: str, pks: Any) -> dict[Any, dict[str, Any]]:
    rows = model._base_manager.using(db).filter(pk__in=pks).select_for_update().order_by("pk")
    return {row.pk: _snapshot(row) for row in rows}


def _record_updates(model: type[models.Model], db: str, before: dict[Any, dict[str, Any]]) -> None:
    for row in model._base_manager.using(db).filter(pk__in=list(before)).order_by("pk"):
        after = _snapshot(row)
        if _changed(model, before[row.pk], after):
            _record(row, "update", before[row.pk], after)


def _logged_update(self: models.QuerySet[Any], **kwargs: Any) -> int:
    model = self.model
    if not _is_logged(model) or set(kwargs) <= _volatile(model) or self.query.is_sliced:
        return _plain_update(self, **kwargs)  # (a sliced update raises there, as in Django)
    with transaction.atomic(using=self.db):
        before = _locked_snapshots(model, self.db, self.values("pk"))
        count = _plain_update(
            model._base_manager.using(self.db).filter(pk__in=list(before)), **kwargs
        )
        _record_updates(model, self.db, before)
    return count


def _logged_bulk_create(
    self: models.QuerySet[Any], objs: Iterable[models.Model], *args: Any, **kwargs: Any
) -> list[models.Model]:
    model = self.model
    if not _is_logged(model):
        return _plain_bulk_create(self, objs, *args, **kwargs)
    with transaction.atomic(using=self.db):
        created = _plain_bulk_create(self, objs, *args, **kwargs)
        for obj in created:
            if obj.pk is not None:  # ignore_conflicts: rows not inserted come back without pk
                _record(obj, "create", None, _snapshot(obj))
    return created


def connect_signals() -> None:
    pre_save.connect(_pre_save, dispatch_uid="lims_changelog_pre")
    post_save.connect(_post_save, dispatch_uid="lims_changelog_post")
    post_delete.connect(_post_delete, dispatch_uid="lims_changelog_delete")
    models.QuerySet.update = _logged_update  # type: ignore[method-assign]
    models.QuerySet.bulk_create = _logged_bulk_create  # type: ignore[method-assign,assignment]
