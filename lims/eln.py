"""ELN files (``.eln``, the ELN Consortium's format): an RO-Crate in a zip with one top folder.

The crate's JSON-LD is built with the maintained ``rocrate`` library; the zip is written here,
streamed, because the consortium wants every entry under one top folder (``rocrate`` writes
the crate at the zip's root) and because raw files and series can be large: each file goes
into the zip in 1 MiB pieces, hashed on the way, and ``ro-crate-metadata.json`` is written
last with every file's ``sha256`` and ``contentSize`` (the order of zip entries is free).

What the consortium checks (TheELNFileFormat ``SPECIFICATION.md`` and its test checks) and
where it is met: one root folder; a metadata descriptor with ``version`` and ``sdPublisher``
(an Organization node with ``name`` and ``url``); the root ``./`` lists every Dataset in its
``hasPart`` and no Dataset lists another Dataset; Datasets have ``name`` (and ``author`` when
known), Files ``name``, ``encodingFormat``, ``contentSize`` (a string of bytes) and
``sha256``; free metadata as ``variableMeasured`` PropertyValue nodes with ``propertyID``;
contextual entities use ``#`` ids; ``keywords`` is one string.

Provenance inside the crate: a derived file (a Parquet series, a cycle table) has
``isBasedOn`` its raw file, and a ``CreateAction`` names the parser (a SoftwareApplication
with its version) as ``instrument``, the raw file as ``object``, the derived files as
``result`` and the conventions in ``description``.

This module knows no domain model: ``cells``, ``samples`` and ``depositions`` describe their
objects with the dataclasses below. ``eln_read`` is the reader the tests (and a future
import) use: it checks the structure above and every file's hash.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from lims.streams import Spool

ELN_VERSION = "1.0"  # the descriptor's ``version``: the ELN file format's
RO_CRATE_VERSION = "1.2"
CHUNK = 1024 * 1024
METADATA = "ro-crate-metadata.json"


@dataclass
class CrateFile:
    """One file of the crate: a stored file (``source``) or bytes made for the export."""

    path: str  # inside the crate, e.g. "test-12/raw/run.mpr"
    name: str
    encoding_format: str
    description: str
    source: Path | None = None
    content: bytes | None = None
    based_on: list[str] = field(default_factory=list)  # paths of the files it came from
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CrateDataset:
    """A folder of the crate: one object (a cell, a test, a sample, a run) and its files."""

    path: str  # ends with "/"
    name: str
    description: str = ""
    identifier: str = ""
    keywords: str = ""
    url: str = ""
    date_created: datetime | None = None
    author: str = ""  # a person's name; becomes a Person node
    properties: list[tuple[str, Any, str]] = field(default_factory=list)  # id, value, unit
    files: list[CrateFile] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)  # paths of related datasets


@dataclass
class CrateAction:
    """How derived files were made: a parser (name, version) from inputs to results."""

    id: str
    name: str
    software: str
    version: str
    inputs: list[str]
    results: list[str]
    description: str = ""
    end_time: datetime | None = None


@dataclass
class Crate:
    folder: str  # the zip's one top folder; also the download's file name stem
    name: str
    description: str
    datasets: list[CrateDataset]
    actions: list[CrateAction] = field(default_factory=list)
    publisher_name: str = "ALD/ASSB LIMS"
    publisher_url: str = ""  # the server's base URL (absolute)


def _pieces(item: CrateFile) -> Iterator[bytes]:
    if item.content is not None:
        yield item.content
        return
    assert item.source is not None, item.path
    with item.source.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def eln_stream(crate: Crate) -> Iterator[bytes]:
    """The ``.eln`` zip as bytes, file by file; the metadata last, with the hashes seen."""
    spool = Spool()
    written: dict[str, tuple[str, int]] = {}
    stamp = datetime.now(UTC).timetuple()[:6]
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for dataset in crate.datasets:
            for item in dataset.files:
                digest, size = hashlib.sha256(), 0
                info = zipfile.ZipInfo(f"{crate.folder}/{item.path}", date_time=stamp)
                # Parquet is compressed already: stored, not deflated again
                info.compress_type = (
                    zipfile.ZIP_STORED
                    if item.encoding_format.endswith("parquet")
                    else zipfile.ZIP_DEFLATED
                )
                with archive.open(info, "w", force_zip64=True) as out:
                    for chunk in _pieces(item):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                        if spool.parts:
                            yield spool.take()
                written[item.path] = (digest.hexdigest(), size)
                yield spool.take()
        metadata = crate_metadata(crate, written)
        info = zipfile.ZipInfo(f"{crate.folder}/{METADATA}", date_time=stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, json.dumps(metadata, indent=1))
    yield spool.take()


def crate_metadata(crate: Crate, written: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """The crate's JSON-LD, built with ``rocrate``; ``written`` holds each file's hash, size."""
    from rocrate.model import ContextEntity
    from rocrate.rocrate import ROCrate

    rc = ROCrate(version=RO_CRATE_VERSION)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    publisher = rc.add(
        ContextEntity(
            rc,
            "#publisher",
            properties={
                "@type": "Organization",
                "name": crate.publisher_name,
                "url": crate.publisher_url,
            },
        )
    )
    descriptor = rc.metadata
    descriptor["version"] = ELN_VERSION
    descriptor["dateCreated"] = now
    descriptor["sdPublisher"] = publisher
    rc.root_dataset["name"] = crate.name
    rc.root_dataset["description"] = crate.description
    rc.root_dataset["dateCreated"] = now
    people: dict[str, Any] = {}
    datasets = []
    for dataset in crate.datasets:
        files = []
        for item in dataset.files:
            sha, size = written[item.path]
            props: dict[str, Any] = {
                "name": item.name,
                "encodingFormat": item.encoding_format,
                "description": item.description,
                "contentSize": str(size),
                "sha256": sha,
                **item.extra,
            }
            files.append(rc.add_file(item.source, dest_path=item.path, properties=props))
        props = {
            "name": dataset.name,
            "description": dataset.description,
            "identifier": dataset.identifier,
            "keywords": dataset.keywords,
            "url": dataset.url,
            "dateCreated": dataset.date_created.isoformat() if dataset.date_created else "",
        }
        entity = rc.add_dataset(
            dest_path=dataset.path, properties={k: v for k, v in props.items() if v}
        )
        entity["hasPart"] = files
        if dataset.author:
            person = people.get(dataset.author)
            if person is None:
                person = rc.add(
                    ContextEntity(
                        rc,
                        f"#person-{len(people) + 1}",
                        properties={"@type": "Person", "name": dataset.author},
                    )
                )
                people[dataset.author] = person
            entity["author"] = person
        values = []
        filled = [p for p in dataset.properties if p[1] is not None and p[1] != ""]
        for n, (key, value, unit) in enumerate(filled, 1):
            pv: dict[str, Any] = {"@type": "PropertyValue", "propertyID": key, "name": key}
            pv["value"] = value if isinstance(value, int | float | bool) else str(value)
            if unit:
                pv["unitText"] = unit
            values.append(rc.add(ContextEntity(rc, f"#{_slug(dataset.path)}-pv{n}", pv)))
        if values:
            entity["variableMeasured"] = values
        datasets.append(entity)
    by_path = {e.id: e for e in rc.data_entities}
    for dataset in crate.datasets:  # links once every dataset and file exists
        entity = by_path[dataset.path]
        if dataset.mentions:
            entity["mentions"] = [by_path[p] for p in dataset.mentions]
        for item in dataset.files:
            if item.based_on:
                by_path[item.path]["isBasedOn"] = [by_path[p] for p in item.based_on]
    for action in crate.actions:
        software = rc.add(
            ContextEntity(
                rc,
                f"#software-{_slug(action.software)}-{_slug(action.version)}",
                properties={
                    "@type": "SoftwareApplication",
                    "name": action.software,
                    "version": action.version,
                },
            )
        )
        props = {
            "@type": "CreateAction",
            "name": action.name,
            "description": action.description,
        }
        if action.end_time:
            props["endTime"] = action.end_time.isoformat()
        act = rc.add(ContextEntity(rc, f"#{_slug(action.id)}", properties=props))
        act["instrument"] = software
        act["object"] = [by_path[p] for p in action.inputs]
        act["result"] = [by_path[p] for p in action.results]
    rc.root_dataset["hasPart"] = datasets  # the ELN table of contents: its Datasets
    metadata: dict[str, Any] = rc.metadata.generate()
    return metadata


def safe_name(name: str) -> str:
    """A file name fit for a zip path: the last part of ``name``, odd characters replaced."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in "-_. " else "_" for c in base).strip(". ")
    return cleaned or "file"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "x"


# -- reading back ------------------------------------------------------------------------


class ElnError(ValueError):
    """An .eln that breaks the format: says which file and which rule."""


@dataclass
class ElnContents:
    folder: str
    metadata: dict[str, Any]
    files: dict[str, dict[str, Any]]  # crate path -> its File node
    entities: int  # as parsed by rocrate


def eln_read(path: Path) -> ElnContents:
    """Check an .eln against the consortium's rules and every file against its hash; parse
    it with ``rocrate``. Raises ElnError naming the file and the broken rule."""
    from rocrate.rocrate import ROCrate

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts}
        loose = [n for n in names if len(PurePosixPath(n).parts) == 1 and not n.endswith("/")]
        if len(tops) != 1 or loose:
            raise ElnError(f"{path.name}: needs exactly one top folder, found {sorted(tops)}")
        (folder,) = tops
        try:
            metadata = json.loads(archive.read(f"{folder}/{METADATA}"))
        except KeyError:
            raise ElnError(f"{path.name}: no {folder}/{METADATA}") from None
        graph = {node["@id"]: node for node in metadata["@graph"]}
        if len(graph) != len(metadata["@graph"]):
            raise ElnError(f"{path.name}: duplicate @id in {METADATA}")
        _check_structure(path.name, graph)
        files = {k: v for k, v in graph.items() if _types(v) & {"File"}}
        for crate_path, node in files.items():
            try:
                data = archive.open(f"{folder}/{crate_path}")
            except KeyError:
                raise ElnError(f"{path.name}: {crate_path} is described but missing") from None
            digest, size = hashlib.sha256(), 0
            with data:
                while chunk := data.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
            if digest.hexdigest() != node.get("sha256"):
                raise ElnError(f"{path.name}: {crate_path}: sha256 does not match its bytes")
            if str(size) != node.get("contentSize"):
                raise ElnError(f"{path.name}: {crate_path}: contentSize {node.get('contentSize')}")
        with tempfile.TemporaryDirectory() as tmp:
            archive.extractall(tmp)
            entities = len(ROCrate(Path(tmp) / folder).get_entities())
    return ElnContents(folder=folder, metadata=metadata, files=files, entities=entities)


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("@type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def _ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [v["@id"] for v in items if isinstance(v, dict) and "@id" in v]


def _check_structure(name: str, graph: dict[str, dict[str, Any]]) -> None:
    descriptor, root = graph.get(METADATA), graph.get("./")
    if descriptor is None or root is None:
        raise ElnError(f"{name}: no metadata descriptor or no root dataset")
    for key in ("version", "sdPublisher", "conformsTo", "about"):
        if key not in descriptor:
            raise ElnError(f"{name}: the metadata descriptor has no {key!r}")
    publisher = graph.get(_ids(descriptor["sdPublisher"])[0], {})
    if not {"name", "url"} <= set(publisher):
        raise ElnError(f"{name}: sdPublisher needs an Organization with name and url")
    datasets = [k for k, v in graph.items() if "Dataset" in _types(v) and k != "./"]
    listed = set(_ids(root.get("hasPart", [])))
    for key in datasets:
        node = graph[key]
        if key not in listed:
            raise ElnError(f"{name}: dataset {key} is not in the root's hasPart")
        if "name" not in node:
            raise ElnError(f"{name}: dataset {key} has no name")
        if any("Dataset" in _types(graph.get(part, {})) for part in _ids(node.get("hasPart", []))):
            raise ElnError(f"{name}: dataset {key} lists another dataset in hasPart")
    for key, node in graph.items():
        for part in _ids(node.get("hasPart", [])):
            if part not in graph:
                raise ElnError(f"{name}: {key} hasPart {part}, which is not described")
        if isinstance(node.get("keywords"), list):
            raise ElnError(f"{name}: {key}: keywords must be one string")
        if "File" in _types(node):
            missing = {"name", "encodingFormat", "contentSize", "sha256"} - set(node)
            if missing:
                raise ElnError(f"{name}: file {key} lacks {sorted(missing)}")
