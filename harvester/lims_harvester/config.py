"""The TOML configuration: the server, the token, and the folders with their rules.

Read once at start (``load``); every mistake is reported with its place in the file, before
anything is watched or sent. The reference is docs/harvester.md.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

KINDS = ("cycler", "eis", "ald_log", "furnace_log")
# the ingest endpoint's optional form fields a rule may set (lims/api/serializers.py)
FIELDS = ("cell", "sample", "run", "anneal", "temperature_c", "kind")
DEFAULT_IGNORE = ("~$*", "*.tmp", "*.part", ".*", "*.lock")


class ConfigError(ValueError):
    """A configuration that cannot be right; the message says where."""


@dataclass(frozen=True)
class Rule:
    """Maps a file to upload fields: a regex searched in its name or relative path.

    Named groups that are upload fields (``cell``, ``run``, ...) are used as they are;
    ``fields`` adds literal values in which ``{group}`` is replaced by that group's text.
    """

    pattern: re.Pattern[str]
    on: str = "path"  # "path" (relative to the folder, / separators) or "name"
    fields: dict[str, str] = field(default_factory=dict)

    def apply(self, relpath: str) -> dict[str, str] | None:
        subject = PurePosixPath(relpath).name if self.on == "name" else relpath
        found = self.pattern.search(subject)
        if found is None:
            return None
        groups = {k: v for k, v in found.groupdict().items() if v is not None}
        out = {k: v for k, v in groups.items() if k in FIELDS}
        for key, template in self.fields.items():
            try:
                out[key] = template.format(**groups)
            except (KeyError, IndexError, ValueError):
                out[key] = template
        return out


@dataclass(frozen=True)
class Folder:
    path: Path
    patterns: tuple[str, ...] = ("*",)
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    recursive: bool = True
    kind: str | None = None
    settle_seconds: float = 30.0
    resend_after_seconds: float = 300.0
    metadata: dict[str, Any] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    def wants(self, relpath: str) -> bool:
        """Whether a file (path relative to the folder, / separators) is to be harvested.

        A pattern with a ``/`` is matched against the relative path (``*`` crosses folders),
        one without against the file name; case-insensitive on Windows (``fnmatch``).
        """
        name = PurePosixPath(relpath).name
        parts = PurePosixPath(relpath).parts
        if not self.recursive and len(parts) > 1:
            return False
        if any(fnmatch.fnmatch(p, pat) for pat in self.ignore for p in parts):
            return False
        return any(fnmatch.fnmatch(relpath if "/" in p else name, p) for p in self.patterns)

    def wants_dir(self, name: str) -> bool:
        """Whether a subfolder is looked into (not ignored, e.g. ``.git`` by ``.*``)."""
        return not any(fnmatch.fnmatch(name, pat) for pat in self.ignore)

    def fields_for(self, relpath: str) -> dict[str, str]:
        """Upload fields of a file: the folder's kind, then the first rule that matches."""
        out: dict[str, str] = {"kind": self.kind} if self.kind else {}
        for rule in self.rules:
            mapped = rule.apply(relpath)
            if mapped is not None:
                out.update(mapped)
                break
        return out


@dataclass(frozen=True)
class Backoff:
    initial_seconds: float = 5.0
    max_seconds: float = 600.0
    factor: float = 2.0


@dataclass(frozen=True)
class Config:
    server: str
    token: str
    folders: tuple[Folder, ...]
    state_file: Path
    rescan_seconds: float = 60.0
    heartbeat_seconds: float = 300.0
    timeout_seconds: float = 60.0
    max_upload_bytes_per_second: float = 0.0
    verify_tls: bool | str = True
    backoff: Backoff = field(default_factory=Backoff)
    source: Path | None = None

    def folder_of(self, path: Path) -> tuple[Folder, str] | None:
        """The folder a path belongs to and the path relative to it, or None."""
        for folder in self.folders:
            try:
                rel = path.relative_to(folder.path)
            except ValueError:
                continue
            return folder, rel.as_posix()
        return None


def _take(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.pop(key)
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}: expected {_name(kind)}, got {value!r}")
    return value


def _name(kind: type | tuple[type, ...]) -> str:
    names = {"str": "text", "float": "a number", "int": "a number", "dict": "a table"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(dict.fromkeys(names.get(k.__name__, k.__name__) for k in kinds))


def _number(table: dict[str, Any], key: str, default: float, where: str) -> float:
    if key not in table:
        return default
    value = float(_take(table, key, (int, float), where))
    if value < 0:
        raise ConfigError(f"{where}.{key}: must not be negative")
    return value


def _strings(table: dict[str, Any], key: str, default: tuple[str, ...], where: str) -> tuple:
    if key not in table:
        return default
    value = table.pop(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key}: expected a list of text")
    return tuple(value)


def _leftover(table: dict[str, Any], where: str) -> None:
    if table:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(table))}")


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    table = dict(raw)
    if "match" not in table:
        raise ConfigError(f"{where}: needs match = '<regular expression>'")
    text = _take(table, "match", str, where)
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise ConfigError(f"{where}.match: not a regular expression: {exc}") from None
    on = _take(table, "on", str, where) if "on" in table else "path"
    if on not in ("path", "name"):
        raise ConfigError(f"{where}.on: 'path' or 'name', got {on!r}")
    fields = _take(table, "fields", dict, where) if "fields" in table else {}
    for key, value in fields.items():
        if key not in FIELDS:
            raise ConfigError(f"{where}.fields.{key}: not an upload field ({', '.join(FIELDS)})")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}.fields.{key}: expected text or a number")
    _leftover(table, where)
    unknown = set(pattern.groupindex) - set(FIELDS)
    if unknown and not fields:
        raise ConfigError(
            f"{where}.match: group(s) {', '.join(sorted(unknown))} are no upload field "
            f"({', '.join(FIELDS)}); use them in fields = {{ cell = '...{{name}}...' }}"
        )
    return Rule(pattern=pattern, on=on, fields={k: str(v) for k, v in fields.items()})


def _folder(raw: Any, where: str, base: Path) -> Folder:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    table = dict(raw)
    if "path" not in table:
        raise ConfigError(f"{where}: needs path = '<folder>'")
    path = Path(os.path.expandvars(os.path.expanduser(_take(table, "path", str, where))))
    kind = _take(table, "kind", str, where) if "kind" in table else None
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"{where}.kind: one of {', '.join(KINDS)}, got {kind!r}")
    metadata = _take(table, "metadata", dict, where) if "metadata" in table else {}
    rules_raw = table.pop("rules", [])
    if not isinstance(rules_raw, list):
        raise ConfigError(f"{where}.rules: expected [[folders.rules]] tables")
    folder = Folder(
        path=path if path.is_absolute() else (base / path),
        patterns=_strings(table, "patterns", ("*",), where),
        ignore=_strings(table, "ignore", DEFAULT_IGNORE, where),
        recursive=bool(_take(table, "recursive", bool, where)) if "recursive" in table else True,
        kind=kind,
        settle_seconds=_number(table, "settle_seconds", 30.0, where),
        resend_after_seconds=_number(table, "resend_after_seconds", 300.0, where),
        metadata=metadata,
        rules=tuple(_rule(r, f"{where}.rules[{i}]") for i, r in enumerate(rules_raw)),
    )
    _leftover(table, where)
    return folder


def parse(data: dict[str, Any], *, base: Path, source: Path | None = None) -> Config:
    """A Config from the TOML's table; relative paths are relative to ``base``."""
    table = dict(data)
    for key in ("server", "token"):
        if key not in table:
            raise ConfigError(f"{key} is missing")
    server = _take(table, "server", str, "config").rstrip("/")
    if not re.match(r"^https?://[^/]+", server):
        raise ConfigError(f"server: expected http(s)://host[:port], got {server!r}")
    token = os.environ.get("LIMS_HARVEST_TOKEN") or _take(table, "token", str, "config")
    table.pop("token", None)
    folders_raw = table.pop("folders", [])
    if not isinstance(folders_raw, list) or not folders_raw:
        raise ConfigError("no [[folders]] to watch")
    folders = tuple(_folder(f, f"folders[{i}]", base) for i, f in enumerate(folders_raw))
    state = Path(_take(table, "state_file", str, "config")) if "state_file" in table else None
    backoff_raw = table.pop("backoff", {})
    if not isinstance(backoff_raw, dict):
        raise ConfigError("backoff: expected a table")
    backoff_raw = dict(backoff_raw)
    backoff = Backoff(
        initial_seconds=_number(backoff_raw, "initial_seconds", 5.0, "backoff"),
        max_seconds=_number(backoff_raw, "max_seconds", 600.0, "backoff"),
        factor=max(1.0, _number(backoff_raw, "factor", 2.0, "backoff")),
    )
    _leftover(backoff_raw, "backoff")
    verify: bool | str = True
    if "verify_tls" in table:
        verify = _take(table, "verify_tls", (bool, str), "config")
    stem = source.stem if source is not None else "lims-harvest"
    config = Config(
        server=server,
        token=token,
        folders=folders,
        state_file=(base / (state or Path(f"{stem}.state.sqlite"))),
        rescan_seconds=max(0.2, _number(table, "rescan_seconds", 60.0, "config")),
        heartbeat_seconds=_number(table, "heartbeat_seconds", 300.0, "config"),
        timeout_seconds=max(1.0, _number(table, "timeout_seconds", 60.0, "config")),
        max_upload_bytes_per_second=_number(table, "max_upload_bytes_per_second", 0, "config"),
        verify_tls=verify,
        backoff=backoff,
        source=source,
    )
    _leftover(table, "config")
    return config


def load(path: Path) -> Config:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (lims-harvest init writes one)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, base=path.resolve().parent, source=path)


TEMPLATE = """\
# lims-harvest configuration (reference: docs/harvester.md in the LIMS repository)
server = {server}
token = {token}            # an instrument token (project page: Issue a token)
# state_file = "lims-harvest.state.sqlite"   # what was sent; relative to this file
rescan_seconds = 60        # full rescan as a fallback for lost events (network shares)
heartbeat_seconds = 300    # a contact at least this often, for the dashboard
# max_upload_bytes_per_second = 0            # 0: no limit

[backoff]                  # while the server cannot be reached
initial_seconds = 5
max_seconds = 600

[[folders]]
path = {folder}
patterns = {patterns}
recursive = true
{kind}settle_seconds = 30        # size and mtime unchanged this long, and not locked
resend_after_seconds = 300 # a growing file: a new version at most this often

# Rules map a path to upload fields; the first that matches wins, none = leave to linking.
# [[folders.rules]]
# match = '(?P<cell>[A-Z]+-\\d+)_'   # named groups: cell, sample, run, anneal, temperature_c
# on = "name"                        # or "path" (relative to the folder, / separators)
# fields = {{ temperature_c = "25" }}
"""


def render_template(
    *, server: str, token: str, folder: str, patterns: list[str], kind: str | None
) -> str:
    def q(text: str) -> str:
        return "'" + text + "'" if "'" not in text else '"' + text.replace('"', '\\"') + '"'

    return TEMPLATE.format(
        server=q(server),
        token=q(token),
        folder=q(folder),
        patterns="[" + ", ".join(q(p) for p in patterns) + "]",
        kind=f"kind = {q(kind)}\n" if kind else "",
    )
