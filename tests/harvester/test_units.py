"""The harvester's pure parts: configuration and mapping rules, backoff, stability and locks,
the state file; then its loop against an in-process HTTP double (httpx.MockTransport) for the
decisions (ask, send, skip, queue while offline, refuse). The real server: test_live.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from lims_harvester import backoff, client
from lims_harvester.agent import Harvester
from lims_harvester.config import Backoff, ConfigError, load, parse, render_template
from lims_harvester.stability import Seen, locked, settled
from lims_harvester.state import AlreadyRunning, State, single_instance


def _config(tmp_path: Path, **folder: object) -> dict:
    return {
        "server": "http://lims.test",
        "token": "t0ken",
        "folders": [{"path": str(tmp_path / "in"), "settle_seconds": 0, **folder}],
    }


# --- configuration and rules --------------------------------------------------------------


def test_rules_map_name_or_path_to_fields_first_match_wins(tmp_path):
    config = parse(
        _config(
            tmp_path,
            kind="cycler",
            patterns=["*.csv", "runs/*.log"],
            rules=[
                {"match": r"^(?P<cell>[A-Z]+-\d{3})_", "on": "name"},
                {"match": r"^runs/(?P<n>\d+)/", "fields": {"run": "RUN-{n}", "kind": "ald_log"}},
                {"match": r"^rt/", "fields": {"temperature_c": 25}},
            ],
        ),
        base=tmp_path,
    )
    folder = config.folders[0]
    assert folder.fields_for("sub/NMC-001_cyc.csv") == {"kind": "cycler", "cell": "NMC-001"}
    assert folder.fields_for("runs/17/tool.log") == {"kind": "ald_log", "run": "RUN-17"}
    assert folder.fields_for("rt/x.csv") == {"kind": "cycler", "temperature_c": "25"}
    assert folder.fields_for("other/x.csv") == {"kind": "cycler"}  # left to linking
    assert folder.wants("a/b/c.csv") and folder.wants("runs/1/x.log")
    assert not folder.wants("a/x.log") and not folder.wants("a/x.CSV.tmp")
    assert not folder.wants("a/~$open.csv") and not folder.wants(".hidden/x.csv")
    flat = parse(_config(tmp_path, recursive=False, patterns="*.mpr"), base=tmp_path).folders[0]
    assert flat.wants("x.mpr") and not flat.wants("sub/x.mpr")
    assert config.state_file == tmp_path / "lims-harvest.state.sqlite"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "xrd"}, "folders[0].kind: one of"),
        ({"rules": [{"match": "("}]}, "not a regular expression"),
        ({"rules": [{"match": "(?P<code>x)"}]}, "no upload field"),
        ({"rules": [{"match": "x", "fields": {"project": "p"}}]}, "not an upload field"),
        ({"settle_seconds": -1}, "must not be negative"),
        ({"setle_seconds": 3}, "unknown setting(s) setle_seconds"),
        ({"patterns": [1]}, "expected a list of text"),
    ],
)
def test_a_wrong_configuration_says_where(tmp_path, change, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(_config(tmp_path, **change), base=tmp_path)


def test_init_template_loads_back(tmp_path):
    path = tmp_path / "h.toml"
    path.write_text(
        render_template(
            server="https://lims.example.org",
            token="abc",
            folder="C:\\Data\\BT-2000",
            patterns=["*.mpr", "*.csv"],
            kind="cycler",
        )
    )
    config = load(path)
    assert config.server == "https://lims.example.org" and config.token == "abc"
    assert config.folders[0].patterns == ("*.mpr", "*.csv")
    assert config.folders[0].kind == "cycler" and config.state_file.name == "h.state.sqlite"


# --- backoff -------------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_up_to_the_cap_and_honours_retry_after():
    policy = Backoff(initial_seconds=2, max_seconds=60, factor=2)
    lows = [backoff.delay(n, policy, rand=lambda: 0.0) for n in range(1, 9)]
    highs = [backoff.delay(n, policy, rand=lambda: 1.0) for n in range(1, 9)]
    assert highs == [2, 4, 8, 16, 32, 60, 60, 60]
    assert lows == [h / 2 for h in highs]
    assert backoff.delay(1, policy, retry_after=30, rand=lambda: 0.0) == 30
    assert backoff.delay(1, policy, retry_after=3600, rand=lambda: 0.0) == 60
    assert backoff.delay(10**6, policy) <= 60


# --- stability -----------------------------------------------------------------------------


HOLD = """
import fcntl, sys, time
f = open(sys.argv[1], "r+b")
getattr(fcntl, sys.argv[2])(f.fileno(), fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(30)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks")
@pytest.mark.parametrize("kind", ["flock", "lockf"])
def test_a_file_a_writer_holds_locked_is_not_taken(tmp_path, kind):
    path = tmp_path / "run.csv"
    path.write_bytes(b"a,b\n1,2\n")
    seen = Seen.of(path)
    assert locked(path, seen) is None
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), kind], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "held"
        assert f"exclusive {kind} lock" in (locked(path, seen) or "")
    finally:
        writer.kill()
        writer.wait()
    assert locked(path, seen) is None
    with path.open("ab") as fh:
        fh.write(b"3,4\n")
    assert locked(path, seen) == "changed since it settled"
    assert settled(100.0, 130.0, 30) and not settled(100.0, 129.9, 30)


# --- state ---------------------------------------------------------------------------------


def test_state_remembers_versions_and_resumes_after_a_crash(tmp_path):
    state = State(tmp_path / "s.sqlite")
    key = {"path": "/d/a.csv", "folder": "/d", "relpath": "a.csv"}
    assert state.seen(**key, size=10, mtime_ns=1) == "waiting"
    assert state.seen(**key, size=10, mtime_ns=1) == "waiting"
    state.queued("/d/a.csv", "aa" * 32)
    state.sending("/d/a.csv")
    state.close()

    state = State(tmp_path / "s.sqlite")  # a crash in the middle of the upload
    assert state.recover() == 1 and state.get("/d/a.csv").status == "queued"
    row = state.due(time.time())[0]
    state.sent(
        row,
        outcome="uploaded",
        sha256="aa" * 32,
        job_id=7,
        job_url="u",
        http_status=202,
        seconds=0.1,
    )
    assert state.seen(**key, size=10, mtime_ns=1) == "sent"
    assert state.seen(**key, size=20, mtime_ns=2) == "waiting"  # it grew: a new version
    row = state.get("/d/a.csv")
    assert (row.sent_sha256, row.sha256, row.job_id) == ("aa" * 32, None, 7)
    assert state.gone("/d/a.csv").status == "waiting" and state.gone("/d/a.csv") is None
    summary = state.summary()
    assert summary["queue"] == 0 and summary["files"] == {"gone": 1}
    assert summary["sends"] == {"uploaded": 1} and summary["last_success_path"] == "/d/a.csv"
    state.retry_later("/d/a.csv", at=5.0, message="boom")
    state.error(None, "x")
    assert state.summary()["recent_errors"][0]["message"] == "x"


def test_one_writer_per_state_file(tmp_path):
    state = tmp_path / "s.sqlite"
    with single_instance(state), pytest.raises(AlreadyRunning), single_instance(state):
        pass
    with single_instance(tmp_path / "s.sqlite"):
        pass  # released


# --- the loop against an HTTP double --------------------------------------------------------


class Server:
    """The two endpoints as the LIMS answers them (dedupe by sha256), or down."""

    def __init__(self) -> None:
        self.stored: dict[str, int] = {}
        self.posts: list[dict] = []
        self.checks = 0
        self.down = False
        self.refuse = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        assert request.headers["Authorization"] == "Token t0ken"
        if request.url.path == "/api/v1/raw-files/check/":
            self.checks += 1
            sha = request.url.params["sha256"]
            job = self.stored.get(sha)
            ref = {"id": job, "url": f"/j/{job}/", "status": "succeeded"} if job else None
            return httpx.Response(200, json={"sha256": sha, "stored": bool(job), "job": ref})
        body = request.read()
        part = body.split(b'name="file"', 1)[1]
        content = part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
        fields = {
            part.split(b'name="', 1)[1].split(b'"', 1)[0].decode(): part
            for part in body.split(b"Content-Disposition: form-data; ")[1:]
        }
        sha = hashlib.sha256(content).hexdigest()
        self.posts.append({"sha": sha, "fields": sorted(fields), "body": body})
        if self.refuse:
            return httpx.Response(400, json={"detail": "no"})
        new = sha not in self.stored
        self.stored.setdefault(sha, len(self.stored) + 1)
        job = {"id": self.stored[sha], "url": "/j/", "status": "pending"}
        return httpx.Response(
            202 if new else 200,
            json={"job": job, "raw_file": {"sha256": sha, "size": len(content)}},
        )


def _harvester(tmp_path: Path, server: Server, **folder: object) -> Harvester:
    (tmp_path / "in").mkdir(exist_ok=True)
    config = parse(
        {
            **_config(tmp_path, kind="cycler", resend_after_seconds=0, **folder),
            "backoff": {"initial_seconds": 0.01, "max_seconds": 0.05},
        },
        base=tmp_path,
    )
    api = client.Client(config.server, config.token, transport=httpx.MockTransport(server))
    return Harvester(config, State(config.state_file), api)


def _pass(h: Harvester) -> None:
    h.scan()
    h.promote()
    h.send_due()


def test_new_grown_renamed_and_deleted_files(tmp_path):
    server = Server()
    h = _harvester(tmp_path, server, rules=[{"match": r"(?P<cell>C-\d+)", "on": "name"}])
    data = tmp_path / "in" / "C-001_run.csv"
    data.write_bytes(b"time_s,voltage_v\n0,3.0\n")
    _pass(h)
    assert len(server.posts) == 1 and server.posts[0]["fields"] == [
        "cell",
        "file",
        "kind",
        "metadata",
    ]
    metadata = server.posts[0]["body"].split(b'name="metadata"\r\n\r\n', 1)[1].split(b"\r\n")[0]
    assert json.loads(metadata)["harvest"]["path"] == "C-001_run.csv"
    _pass(h)
    assert len(server.posts) == 1  # nothing changed: nothing sent, nothing asked
    with data.open("ab") as fh:
        fh.write(b"1,3.1\n")
    _pass(h)
    assert len(server.posts) == 2 and len(server.stored) == 2  # the new version
    data.rename(data.with_name("C-001_copy.csv"))
    _pass(h)
    assert len(server.posts) == 2  # same bytes: asked, not sent
    row = h.state.get(str(data.with_name("C-001_copy.csv")))
    assert (row.status, row.outcome, row.job_id) == ("sent", "present", 2)
    assert h.state.get(str(data)).status == "gone"
    os.utime(data.with_name("C-001_copy.csv"))  # touched, same bytes
    _pass(h)
    assert len(server.posts) == 2
    assert h.state.get(str(data.with_name("C-001_copy.csv"))).outcome == "unchanged"


def test_offline_queue_backs_off_then_drains_and_refusals_wait_for_a_change(tmp_path):
    server = Server()
    h = _harvester(tmp_path, server)
    for n in range(3):
        (tmp_path / "in" / f"f{n}.csv").write_text(f"t,v\n{n},3\n")
    server.down = True
    _pass(h)
    assert h.offline_for() > 0 and h.state.queue_length() == 3
    assert h.state.summary()["offline_since"] is not None
    assert h.send_due() == 0  # within the backoff nobody calls
    server.down = False
    time.sleep(0.06)
    assert h.send_due() == 3 and h.state.queue_length() == 0
    assert len(server.stored) == 3 and h.state.summary()["offline_since"] is None

    server.refuse = True
    bad = tmp_path / "in" / "bad.csv"
    bad.write_text("nonsense")
    _pass(h)
    assert h.state.get(str(bad)).status == "refused"
    _pass(h)
    assert len(server.posts) == 4  # not retried while the bytes are the same
    server.refuse = False
    bad.write_text("t,v\n9,3\n")
    _pass(h)
    assert h.state.get(str(bad)).status == "sent"

    # an outage recorded by a run that then stopped ends at the next run's first contact
    h.state.set_meta("offline_since", str(time.time() - 60))
    h.state.set_meta("last_contact_at", None)
    restarted = Harvester(h.config, h.state, h.api)
    restarted.heartbeat()
    assert restarted.state.summary()["offline_since"] is None


def test_a_file_cut_while_it_is_sent_settles_again(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"x" * 200_000)
    stream = client.Outgoing(path, 200_000)
    assert stream.seek(0, os.SEEK_END) == 200_000 and stream.read(100_000) == b"x" * 100_000
    path.write_bytes(b"x" * 1000)
    with pytest.raises(client.Changed):
        stream.read(100_000)
    stream.close()
    throttled = client.Outgoing(path, 1000, rate=4000)
    started = time.monotonic()
    while throttled.read(250):
        pass
    assert time.monotonic() - started >= 0.2 and throttled.digest.hexdigest() == (
        hashlib.sha256(b"x" * 1000).hexdigest()
    )
    throttled.close()


def test_a_folder_that_drops_out_marks_nothing_gone(tmp_path):
    server = Server()
    h = _harvester(tmp_path, server)
    (tmp_path / "in" / "a.csv").write_text("t,v\n1,3\n")
    _pass(h)
    (tmp_path / "in").rename(tmp_path / "away")  # the share is down
    _pass(h)
    assert h.state.get(str(tmp_path / "in" / "a.csv")).status == "sent"
    assert "folder not available" in h.state.summary()["recent_errors"][0]["message"]
