"""Which parsers and handlers exist: filled by each app's ``AppConfig.ready()``.

``lims`` imports no domain app; apps register here, never as a side effect of importing a
parser module, so importing one parser family never loads another. Detection ranks by sniff
score, then by specificity, then by name: the answer never depends on import order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lims.ingestion.parsing import ParseError, Parser

_PARSERS: dict[str, Parser] = {}
_HANDLERS: dict[str, IngestHandler] = {}
_MAPPING_RESOLVERS: list[Callable[..., Any]] = []


@dataclass(frozen=True)
class IngestOutcome:
    """What a domain handler reports back: the job's final status and result links."""

    status: str
    result: dict[str, Any]


@dataclass(frozen=True)
class IngestHandler:
    """The domain side of one kind of file, in two phases.

    ``prepare(job=, data=)`` runs outside any transaction and may take long (series to
    Parquet, summaries, pulse detection, checks); it must not write rows others can see.
    ``persist(job=, prepared=)`` runs inside one short transaction with the job's final
    status: rows, records, events. Both are called with keywords.
    """

    kind: str
    prepare: Callable[..., Any]
    persist: Callable[..., IngestOutcome]


class NoHandler(LookupError):
    """No app registered a handler for a kind (a deployment error, not a bad file)."""


def register_parser(parser: Parser | type[Parser]) -> None:
    instance: Parser = parser() if isinstance(parser, type) else parser
    current = _PARSERS.get(instance.name)
    if current is not None and type(current) is not type(instance):
        raise RuntimeError(f"duplicate parser name {instance.name!r}")
    _PARSERS[instance.name] = instance


def register_parsers(parsers: Iterable[Parser | type[Parser]]) -> None:
    for parser in parsers:
        register_parser(parser)


def register_handler(
    kind: str, *, prepare: Callable[..., Any], persist: Callable[..., Any]
) -> None:
    _HANDLERS[kind] = IngestHandler(kind=kind, prepare=prepare, persist=persist)


def register_mapping_resolver(resolver: Callable[..., Any]) -> None:
    """A source of saved column maps for files no parser recognises (an ALD tool's channel
    map): called with ``project, params, kind, instrument``; returns a saved map or None."""
    if resolver not in _MAPPING_RESOLVERS:
        _MAPPING_RESOLVERS.append(resolver)


def mapping_resolvers() -> list[Callable[..., Any]]:
    return list(_MAPPING_RESOLVERS)


def all_parsers() -> list[Parser]:
    return list(_PARSERS.values())


def get_parser(name: str) -> Parser:
    try:
        return _PARSERS[name]
    except KeyError:
        raise ParseError(f"no parser named {name!r}") from None


def get_handler(kind: str) -> IngestHandler:
    try:
        return _HANDLERS[kind]
    except KeyError:
        raise NoHandler(f"no ingestion handler is registered for {kind!r} files") from None


def handled_kinds() -> tuple[str, ...]:
    return tuple(sorted(_HANDLERS))


def specificity(parser: Parser) -> int:
    return int(getattr(parser, "specificity", 1))


def detect_parser(head: bytes, filename: str, kind: str | None = None) -> Parser | None:
    """Best parser by sniff score, then specificity, then name; None when nothing fits."""
    scored = []
    for parser in _PARSERS.values():
        if kind and parser.kind != kind:
            continue
        score = parser.sniff(head, filename)
        if score > 0:
            scored.append((-score, -specificity(parser), parser.name, parser))
    return min(scored, key=lambda item: item[:3])[3] if scored else None
