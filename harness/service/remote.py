"""The participant's client of a submission server (httpx): `harness submit --server` checks the project locally,
packs it deterministically (`harness.uploads.pack`), uploads it with an idempotency key (retried on a lost
connection or a server error: the key makes a retry the same upload), then follows its sandboxed check on the
server; `harness status --server` reads the participant's own submissions and runs.

The token comes from HARNESS_TOKEN, or from a token file (`--token-file`, default ~/.config/harness/token)
that only its owner may read: never from the command line, where it would land in the shell's history."""

from __future__ import annotations

import os
import stat
import time
import uuid
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

DEFAULT_TOKEN_FILE = Path("~/.config/harness/token")
RETRIES = 4


def read_token(token_file: Path | None = None) -> str:
    """HARNESS_TOKEN, else the token file (refused when its group or others may read it)."""
    token = os.environ.get("HARNESS_TOKEN", "").strip()
    if token and token_file is None:
        return token
    path = (token_file or DEFAULT_TOKEN_FILE).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise HarnessError(
            f"no token: HARNESS_TOKEN is not set and {path} does not exist",
            f"set HARNESS_TOKEN, or write the token the organiser gave you to {path} (chmod 600)",
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HarnessError(f"{path} may be read by other users (mode {stat.S_IMODE(mode):o})", f"chmod 600 {path}")
    token = path.read_text(errors="replace").strip()
    if not token or len(token) > 256:
        raise HarnessError(f"{path} holds no token", "write the token the organiser gave you into it, alone")
    return token


def _client(server: str, token: str) -> Any:
    import httpx

    if not server.startswith(("http://", "https://")):
        raise HarnessError(f"--server {server!r} is not an http(s) URL", "e.g. --server https://cup.example.org")
    headers = {"Authorization": f"Bearer {token}", "User-Agent": "harness-client"}
    return httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=httpx.Timeout(30.0, read=600.0))


def _call(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """One request, retried on a lost connection or a 5xx (with the same body and idempotency key); a 4xx is
    the server's answer, raised as the error it names."""
    import httpx

    for attempt in range(RETRIES):
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            if attempt == RETRIES - 1:
                raise HarnessError(
                    f"cannot reach the submission server at {client.base_url} ({type(exc).__name__}: {exc})",
                    "check --server and your connection; retrying uploads nothing twice",
                ) from None
        else:
            if response.status_code < 500 or attempt == RETRIES - 1:
                return _answer(response)
        time.sleep(min(8.0, 0.5 * 2**attempt))
    raise AssertionError("unreachable")


def _answer(response: Any) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:300]}
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        fix = body.get("fix") if isinstance(body, dict) else None
        raise HarnessError(f"the server refused ({response.status_code}): {error or 'no reason given'}", fix)
    return body


def submit_remote(
    path: Path, server: str, token_file: Path | None = None, wait: bool = True, wait_s: float = 1800.0
) -> dict[str, Any]:
    """Check locally, pack, upload once (however often it is retried), and follow the server's check."""
    from harness.service.check import check
    from harness.service.submit import refuse_faults
    from harness.submission import content_hash
    from harness.uploads import ARCHIVE_TYPE, pack

    token = read_token(token_file)
    refuse_faults(check(path, runner="local"))  # the participant's own code, on their own machine
    data = pack(path)
    headers = {
        "Content-Type": ARCHIVE_TYPE,
        "Idempotency-Key": f"harness-{uuid.uuid4().hex}",
        "X-Harness-Content-Hash": content_hash(path),
    }
    with _client(server, token) as client:
        status = _call(client, "POST", "/v1/submissions", content=data, headers=headers)
        deadline = time.monotonic() + wait_s
        while wait and status.get("state") == "checking" and time.monotonic() < deadline:
            time.sleep(1.0)
            status = _call(client, "GET", f"/v1/uploads/{status['upload_id']}")
    status["archive_bytes"] = len(data)
    return status


def status_remote(server: str, token_file: Path | None = None) -> dict[str, Any]:
    """The participant's uploads, entries and runs on the server."""
    with _client(server, read_token(token_file)) as client:
        return _call(client, "GET", "/v1/submissions")
