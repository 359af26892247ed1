"""The two calls the harvester makes: "are these bytes stored?" and the streamed upload.

httpx streams a multipart file object in 64 KiB reads with a Content-Length taken from it
(``seek``/``tell``), so a file of any size goes without being held in memory. The file object
here (``Outgoing``) reads exactly the bytes that were hashed, hashes them again on the way,
throttles, reports progress, and stops the request if the file shrank under it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lims_harvester import __version__

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class Offline(Exception):
    """The server cannot take it now (unreachable, 5xx, 429, 503/507): try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unauthorized(Offline):
    """401/403: the token is wrong, revoked or not an instrument's; retried, loudly."""


class Refused(Exception):
    """The server refuses these bytes (400, 413, 415): not tried again until they change."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Changed(Exception):
    """The file changed while it was read: it has to settle again."""


@dataclass(frozen=True)
class Check:
    stored: bool
    job_id: int | None = None
    job_url: str | None = None


@dataclass(frozen=True)
class Uploaded:
    status: int  # 202 new, 200 the same bytes were there
    sha256: str  # what the server stored
    job_id: int | None
    job_url: str | None
    elsewhere: bool = False  # 409: another source brought these bytes into the project


class Outgoing(io.RawIOBase):
    """A file's first ``size`` bytes as a read-only stream, hashed as they are read."""

    def __init__(
        self,
        path: Path,
        size: int,
        *,
        progress: Callable[[int], None] | None = None,
        rate: float = 0.0,
    ) -> None:
        self._fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.size = size
        self.sent = 0
        self.digest = hashlib.sha256()
        self._progress = progress
        self._rate = rate
        self._start = time.monotonic()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.sent

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Only what httpx asks: the length (end) and the start before the body."""
        if whence == os.SEEK_END:
            return self.size + offset
        target = offset if whence == os.SEEK_SET else self.sent + offset
        if target != self.sent:
            if target != 0:
                raise io.UnsupportedOperation("Outgoing seeks only to the start")
            self._fh.seek(0)
            self.sent, self.digest, self._start = 0, hashlib.sha256(), time.monotonic()
        return self.sent

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.sent
        if left <= 0:
            return b""
        chunk = self._fh.read(left if n is None or n < 0 else min(n, left))
        if not chunk:
            raise Changed(f"the file is shorter than the {self.size} bytes that were hashed")
        self.sent += len(chunk)
        self.digest.update(chunk)
        if self._rate > 0:  # throttle: a shared lab network, a slow share
            ahead = self.sent / self._rate - (time.monotonic() - self._start)
            if ahead > 0:
                time.sleep(ahead)
        if self._progress is not None:
            self._progress(self.sent)
        return chunk

    def close(self) -> None:
        self._fh.close()
        super().close()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:500]
    return json.dumps(body)[:500]


def _job(body: Any) -> tuple[int | None, str | None]:
    job = body.get("job") if isinstance(body, dict) else None
    if not isinstance(job, dict):
        return None, None
    return job.get("id"), job.get("url")


class Client:
    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: float = 60.0,
        verify: bool | str = True,
        rate: float = 0.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.rate = rate
        if isinstance(verify, str):  # a CA bundle (a site CA): as an SSL context
            verify_ctx: bool | ssl.SSLContext = ssl.create_default_context(cafile=verify)
        else:
            verify_ctx = verify
        self.http = httpx.Client(
            base_url=self.server,
            headers={
                "Authorization": f"Token {token}",
                "User-Agent": f"lims-harvest/{__version__}",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            verify=verify_ctx,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, url, **kwargs)
        except Changed:
            raise
        except httpx.HTTPError as exc:
            raise Offline(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status in (401, 403):
            raise Unauthorized(f"{status} {_detail(response)}")
        if status == 429 or status >= 500:
            raise Offline(f"{status} {_detail(response)}", _retry_after(response))
        return response

    def check(self, sha256: str) -> Check | None:
        """Whether the server stores these bytes in the token's project; None when the server
        does not know the question (an older server: the upload's 200 then says it)."""
        response = self._call("GET", "/api/v1/raw-files/check/", params={"sha256": sha256})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise Offline(f"check answered {response.status_code}: {_detail(response)}")
        body = response.json()
        job_id, job_url = _job(body)
        return Check(stored=bool(body.get("stored")), job_id=job_id, job_url=job_url)

    def upload(
        self,
        path: Path,
        *,
        filename: str,
        size: int,
        sha256: str,
        fields: dict[str, str],
        metadata: dict[str, Any] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Uploaded:
        """POST the file's first ``size`` bytes; raises Changed when they are not the bytes
        of ``sha256`` any more (the server may have stored them: a version like any other)."""
        data = dict(fields)
        if metadata:
            data["metadata"] = json.dumps(metadata)
        stream = Outgoing(path, size, progress=progress, rate=self.rate)
        try:
            response = self._call(
                "POST",
                "/api/v1/ingest/",
                data=data,
                files={"file": (filename, stream, "application/octet-stream")},
            )
        finally:
            stream.close()
        status = response.status_code
        if status == 409:
            return Uploaded(409, sha256, None, None, elsewhere=True)
        if status not in (200, 202):
            raise Refused(f"{status} {_detail(response)}", status)
        body = response.json()
        job_id, job_url = _job(body)
        stored = str((body.get("raw_file") or {}).get("sha256") or stream.digest.hexdigest())
        if stream.digest.hexdigest() != sha256:
            raise Changed(f"changed while it was sent (the server stored {stored[:12]}...)")
        return Uploaded(status, stored, job_id, job_url)
