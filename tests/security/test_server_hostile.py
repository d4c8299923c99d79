"""The submission server under hostile use: the REAL `harness server` (uvicorn on loopback, no checks:
`--check-workers 0` leaves taken uploads `checking` with their quota places reserved) of a classification
competition, and participants whose tokens come from `harness participants add`. Every refusal is a JSON
`{"error", "fix"}` naming the problem, and leaves nothing: no row in `uploads` or `entries`, no file under
$HARNESS_HOME/uploads (its `incoming` folder empty). Bad tokens, other participants' ids, hostile archives
(zip-slip, a link to /etc/passwd, too large while streaming, too many files, not gzip), bad headers, a burst at
the quota, retries with one idempotency key, the rate limit, the access log, and `harness submit --server`."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from harness.uploads import pack
from tests.conftest import make_submission, run_cli
from tests.test_competition_cli import _bundle

COMPETITION = "digits-cup"
# Each participant serves one test, so that the daily quota (3) of one never depends on another test's uploads;
# alice and bob are added by `harness participants add` (their tokens read from its output), the others by the
# service it calls.
PARTICIPANTS = ("alice", "bob", "carol", "dave", "erin", "fay", "gus", "hal")
# The upload limits under test; and a small limit of the unpacked submission, so that a bomb hits it at once.
SERVER_LIMITS = {"HARNESS_MAX_UPLOAD_MB": "1", "HARNESS_MAX_UPLOAD_FILES": "1000", "HARNESS_MAX_SUBMISSION_MB": "8"}
TOKEN = re.compile(r"hxt_[A-Za-z0-9_-]+")
EXE = Path(sys.executable).parent / "harness"


@dataclass
class Server:
    url: str
    env: dict[str, str]
    home: Path
    db_url: str
    log: Path
    root: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(env: dict[str, str], log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`harness server` on a free loopback port, once /v1/health answers."""
    port = _free_port()
    out = (log.parent / f"{log.stem}.stderr").open("w")
    proc = subprocess.Popen(
        [str(EXE), "server", "-c", COMPETITION, "--port", str(port), "--host", "127.0.0.1", "--check-workers", "0",
         "--access-log", str(log), *extra],
        stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
    )  # fmt: skip
    out.close()  # the server holds its own copy
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"harness server exited {proc.returncode}: {Path(out.name).read_text()[-3000:]}")
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("harness server did not answer /v1/health within 60 s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _cli(env: dict[str, str], *args: str) -> str:
    result = run_cli(*args, env=env, timeout=300)
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout


def _token_of(output: str) -> str:
    (token,) = TOKEN.findall(output)
    return token


def _add_participants(db_url: str, names: tuple[str, ...]) -> dict[str, str]:
    """The others through the service `participants add` calls (quicker than a process each): their tokens."""
    from harness.service.competitions import add_participant
    from harness.store.repo import Store

    store = Store(db_url)
    try:
        return {name: add_participant(store, COMPETITION, name)["token"] for name in names}
    finally:
        store.engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("server-hostile")
    home = root / "home"
    db_url = f"sqlite:///{root / 'harness.db'}"
    env = {"HARNESS_HOME": str(home), "HARNESS_DB_URL": db_url, **SERVER_LIMITS}
    _cli(env, "competition", "create", str(_bundle(root, per_day=3)))
    srv = Server(url="", env=env, home=home, db_url=db_url, log=root / "access.log", root=root)
    adding = {  # the two main participants are added by the CLI while the server starts
        name: subprocess.Popen(
            [str(EXE), "participants", "add", name, "-c", COMPETITION],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        for name in PARTICIPANTS[:2]
    }
    proc, srv.url = _start(env, srv.log)
    try:
        for name, adder in adding.items():
            out, err = adder.communicate(timeout=300)
            assert adder.returncode == 0, (name, out, err[-2000:])
            srv.tokens[name] = _token_of(out)
        srv.tokens.update(_add_participants(db_url, PARTICIPANTS[2:]))
        yield srv
    finally:
        _stop(proc)


# helpers -------------------------------------------------------------------------------------------------------


def _post(
    srv: Server,
    token: str | None,
    body: object,
    key: str | None = "",
    content_type: str = "application/gzip",
    **headers: str,
) -> httpx.Response:
    """POST /v1/submissions; key "" makes a fresh idempotency key, None sends none."""
    sent = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if key is not None:
        sent["Idempotency-Key"] = key or f"test-{secrets.token_hex(8)}"
    return httpx.post(srv.url + "/v1/submissions", content=body, headers=sent, timeout=60)


def _get(srv: Server, token: str | None, path: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(srv.url + path, headers=headers, timeout=30)


def _rows(srv: Server) -> dict[str, list[tuple]]:
    engine = create_engine(srv.db_url)
    try:
        with engine.connect() as c:
            return {
                "uploads": [tuple(r) for r in c.execute(text("SELECT id, participant_id, state FROM uploads"))],
                "entries": [tuple(r) for r in c.execute(text("SELECT id, participant_id, status FROM entries"))],
            }
    finally:
        engine.dispose()


def _participant_id(srv: Server, name: str) -> int:
    engine = create_engine(srv.db_url)
    try:
        with engine.connect() as c:
            return c.execute(text("SELECT id FROM participants WHERE name = :n"), {"n": name}).scalar_one()
    finally:
        engine.dispose()


def _files(srv: Server) -> list[str]:
    """Everything under $HARNESS_HOME/uploads but the `incoming` folder itself (made by the first upload)."""
    found = (p.relative_to(srv.uploads_dir).as_posix() for p in srv.uploads_dir.rglob("*"))
    return sorted(name for name in found if name != "incoming")


def _snapshot(srv: Server) -> tuple[dict[str, list[tuple]], list[str]]:
    return _rows(srv), _files(srv)


def _assert_nothing_left(srv: Server, before: tuple[dict[str, list[tuple]], list[str]]) -> None:
    rows, files = _snapshot(srv)
    assert rows == before[0], "a refused request left rows in the store"
    assert files == before[1], f"a refused request left files: {sorted(set(files) ^ set(before[1]))}"
    incoming = srv.uploads_dir / "incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == []
    assert not list(srv.home.rglob("evil*")) and not (srv.root / "evil.py").exists()


def _error(response: httpx.Response, status: int, *fragments: str) -> dict:
    """The response is `status` with a JSON {"error", "fix"} whose error names every fragment."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error", "fix"}, body
    for fragment in fragments:
        assert fragment.lower() in body["error"].lower(), (fragment, body)
    return body


def _refused(srv: Server, send, status: int, *fragments: str) -> dict:
    before = _snapshot(srv)
    body = _error(send(), status, *fragments)
    _assert_nothing_left(srv, before)
    return body


def _archive(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _project(srv: Server, name: str) -> Path:
    return make_submission(srv.root / "projects", name)


def _valid_members(srv: Server, name: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    folder = _project(srv, name)
    return [_file(p.relative_to(folder).as_posix(), p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()]


# 1. tokens -----------------------------------------------------------------------------------------------------


def test_missing_wrong_revoked_and_rotated_tokens_get_401(server):
    archive = pack(_project(server, "auth_tiny"))
    for token in (None, "hxt_" + secrets.token_urlsafe(32), "not-even-a-token"):
        body = _refused(server, lambda t=token: _post(server, t, archive), 401, "token")
        assert "Authorization: Bearer" in body["fix"]
        response = _get(server, token, "/v1/me")
        _error(response, 401, "token")
        assert response.headers["www-authenticate"] == "Bearer"
    basic = httpx.get(server.url + "/v1/me", headers={"Authorization": "Basic YWxpY2U6eA=="}, timeout=30)
    _error(basic, 401, "token")

    # Revoked: worked before, 401 after, also for uploads.
    carol = server.tokens["carol"]
    assert _get(server, carol, "/v1/me").json()["participant"] == "carol"
    out = _cli(server.env, "participants", "token", "carol", "-c", COMPETITION, "--revoke")
    assert "revoked" in out and not TOKEN.search(out)
    _error(_get(server, carol, "/v1/me"), 401, "revoked")
    _refused(server, lambda: _post(server, carol, archive), 401, "token")

    # Rotated: the old token is refused, the new one works.
    old = server.tokens["dave"]
    assert _get(server, old, "/v1/me").json()["participant"] == "dave"
    new = _token_of(_cli(server.env, "participants", "token", "dave", "-c", COMPETITION))
    assert new != old
    _error(_get(server, old, "/v1/me"), 401, "token")
    _refused(server, lambda: _post(server, old, archive), 401, "token")
    me = _get(server, new, "/v1/me")
    assert me.status_code == 200 and me.json() == {"participant": "dave", "team": None, "competition": COMPETITION}
    server.tokens["dave"] = new


# 2. another participant's ids ----------------------------------------------------------------------------------


def _alice_run(server: Server) -> int:
    """An accepted entry of alice with a phase run (written through the store API, as an evaluator would)."""
    from harness.store.competitions import admit, competition, participant
    from harness.store.repo import Store, idempotency_key
    from harness.tracks import get_card

    store = Store(server.db_url)
    try:
        (phase,) = competition(store, COMPETITION).phases
        alice = participant(store, phase.competition_id, "alice")
        row, _ = store.add_submission(
            name="alice-net", track="classification", content_hash="a" * 64, project="alice-net",
            entry_point="alice_pkg:build", variants=[], source_path="-", stored_path="-", site_path="-", queued=False,
        )  # fmt: skip
        assert isinstance(admit(store, phase.id, alice.id, [("alice-net", row.id)], {"per_day": 100}), list)
        card = get_card("classification")
        run_id = store.claim_run(
            idempotency_key("server-hostile", row.id), submission_id=row.id, variant="fp32", track=card.name,
            track_version=card.version, card_hash=card.card_hash, dataset="digits-cup:data/test/dev",
            dataset_hash="0" * 64, device="cpu", profile="quick", runner="local", hardware_class="test",
            harness_version="test", scorer_version="test", primary_metric=card.primary_metric, phase_id=phase.id,
        )  # fmt: skip
        assert run_id is not None
        return run_id
    finally:
        store.engine.dispose()


def test_another_participant_s_upload_and_run_are_404_like_nonexistent_ones(server):
    alice, bob = server.tokens["alice"], server.tokens["bob"]
    taken = _post(server, alice, pack(_project(server, "alice_tiny")))
    assert taken.status_code == 202, taken.text
    upload_id = taken.json()["upload_id"]
    run_id = _alice_run(server)

    assert _get(server, alice, f"/v1/uploads/{upload_id}").json()["upload_id"] == upload_id
    assert _get(server, alice, f"/v1/runs/{run_id}").json()["run_id"] == run_id
    for path, missing in ((f"/v1/uploads/{upload_id}", "/v1/uploads/99999"), (f"/v1/runs/{run_id}", "/v1/runs/99999")):
        other, none = _get(server, bob, path), _get(server, bob, missing)
        theirs, nothing = _error(other, 404), _error(none, 404)
        # The same answer as for an id that does not exist (but for the id itself): nothing of alice's shows.
        assert theirs["error"].replace(path.rsplit("/", 1)[1], "N") == nothing["error"].replace("99999", "N")
        assert theirs["fix"] == nothing["fix"] and "alice" not in other.text

    mine = _get(server, bob, "/v1/submissions").json()
    assert mine["participant"] == "bob" and mine["uploads"] == [] and mine["entries"] == []
    hers = _get(server, alice, "/v1/submissions").json()
    assert [u["upload_id"] for u in hers["uploads"]] == [upload_id]
    assert [r["run_id"] for e in hers["entries"] for r in e["runs"]] == [run_id]


# 3. hostile archives and headers -------------------------------------------------------------------------------


def test_zip_slip_and_a_link_to_etc_passwd_are_refused(server):
    bob = server.tokens["bob"]
    members = _valid_members(server, "slip_tiny")
    slip = _archive([*members, _file("../evil.py", b"import os\nos.system('touch /tmp/pwned')\n")])
    _refused(server, lambda: _post(server, bob, slip), 400, "../evil.py")
    deep = _archive([*members, _file("pkg/../../evil.py", b"x = 1\n")])
    _refused(server, lambda: _post(server, bob, deep), 400, "evil.py")
    absolute = _archive([*members, _file("/tmp/evil.py", b"x = 1\n")])
    _refused(server, lambda: _post(server, bob, absolute), 400, "evil.py")

    link = tarfile.TarInfo("slip_tiny_pkg/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    body = _refused(server, lambda: _post(server, bob, _archive([*members, (link, None)])), 400, "symbolic link")
    assert "passwd" in body["error"]
    hard = tarfile.TarInfo("slip_tiny_pkg/passwd")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    _refused(server, lambda: _post(server, bob, _archive([*members, (hard, None)])), 400, "hard link")


def test_an_upload_over_the_size_limit_is_refused_while_streaming(server):
    bob = server.tokens["bob"]
    blob = os.urandom(2 * 2**20)
    body = _refused(server, lambda: _post(server, bob, blob), 413, "larger than", "1 MiB")
    assert "HARNESS_MAX_UPLOAD_MB" in body["fix"]

    def chunks():  # no Content-Length: chunked transfer encoding, the limit is counted as the bytes come
        for start in range(0, len(blob), 64 * 1024):
            yield blob[start : start + 64 * 1024]

    answers = []

    def chunked() -> httpx.Response:
        answers.append(_post(server, bob, chunks()))
        return answers[-1]

    _refused(server, chunked, 413, "larger than")
    sent = answers[0].request.headers
    assert sent["transfer-encoding"] == "chunked" and "content-length" not in sent
    # A bomb: small on the wire, a 64 MiB file unpacked; refused at the submission limit (8 MiB here).
    bomb = _archive([*_valid_members(server, "bomb_tiny"), _file("bomb_tiny_pkg/weights.bin", bytes(64 * 2**20))])
    assert len(bomb) < 2**20
    _refused(server, lambda: _post(server, bob, bomb), 400, "more than 8.0 MiB")


def test_ten_thousand_files_non_gzip_and_bad_headers_are_refused(server):
    bob = server.tokens["bob"]
    many = _archive([*_valid_members(server, "many_tiny"), *(_file(f"f/{i}.txt", b"") for i in range(10_000))])
    assert len(many) < 2**20
    _refused(server, lambda: _post(server, bob, many), 400, "1,000")
    _refused(server, lambda: _post(server, bob, b"PK\x03\x04 this is a zip, not a gzip tar" * 50), 400, "gzip")
    _refused(server, lambda: _post(server, bob, b""), 400, "empty")

    archive = pack(_project(server, "headers_tiny"))
    _refused(server, lambda: _post(server, bob, archive, content_type="text/plain"), 415, "application/gzip")
    _refused(server, lambda: _post(server, bob, archive, content_type="application/x-tar"), 415, "gzip")
    _refused(server, lambda: _post(server, bob, archive, key=None), 400, "Idempotency-Key")
    _refused(server, lambda: _post(server, bob, archive, key="short"), 400, "Idempotency-Key")
    _refused(server, lambda: _post(server, bob, archive, key="x" * 129), 400, "Idempotency-Key")
    _refused(
        server, lambda: _post(server, bob, archive, X_Harness_Content_Hash="0" * 64), 400, "content", "000000000000"
    )
    _refused(
        server, lambda: _post(server, bob, archive, X_Harness_Content_Hash="nothex"), 400, "X-Harness-Content-Hash"
    )
    # A large body on a route that takes none.
    big = httpx.request(
        "GET", server.url + "/v1/me", content=bytes(100_000), headers={"Authorization": f"Bearer {bob}"}, timeout=30
    )
    _error(big, 413, "too large")
    assert _get(server, bob, "/v1/submissions").json()["uploads"] == []


def test_refusals_after_unpacking_name_no_path_of_the_server(server):
    """A project refused once unpacked (wrong track, no pyproject.toml) leaves nothing, and its error names the
    participant's files, not the folder the server unpacked them in (its HARNESS_HOME, upload ids)."""
    bob = server.tokens["bob"]
    detector = make_submission(server.root / "projects", "det_tiny", track="small-object")
    cases = ((pack(detector), "classification"), (_archive([_file("model.py", b"x = 1\n")]), "pyproject.toml"))
    for archive, fragment in cases:
        body = _refused(server, lambda a=archive: _post(server, bob, a), 400, fragment)
        said = f"{body['error']} {body['fix']}"
        assert str(server.home) not in said and "/uploads/" not in said, body


def test_every_error_is_a_json_error_and_fix(server):
    """The API's promise (harness/server/app.py): errors are always JSON {"error", "fix"}, also those FastAPI
    answers itself: an unknown route, a method a route does not take, an id that is not a number."""
    bob = server.tokens["bob"]
    answers = {
        "unknown route": (_get(server, bob, "/v1/nope"), 404),
        "not a number": (_get(server, bob, "/v1/uploads/abc"), 422),
        "wrong method": (httpx.delete(server.url + "/v1/me", headers={"Authorization": f"Bearer {bob}"}), 405),
    }
    shapes = {what: (r.status_code, r.json()) for what, (r, _) in answers.items()}
    assert all(r.status_code == status for r, status in answers.values()), shapes
    assert all(set(body) == {"error", "fix"} for _, body in shapes.values()), shapes


# 4. a burst at the quota ---------------------------------------------------------------------------------------


def test_a_burst_of_twenty_concurrent_submits_admits_exactly_the_quota(server):
    from harness.submission import content_hash

    erin = server.tokens["erin"]
    folders = [_project(server, f"burst_{i}") for i in range(20)]
    archives = [(pack(f), content_hash(f)) for f in folders]
    start = threading.Barrier(20)
    answers: list[httpx.Response | BaseException] = [None] * 20  # type: ignore[list-item]

    def one(i: int) -> None:
        data, digest = archives[i]
        start.wait()
        try:
            answers[i] = _post(
                server, erin, data, key=f"burst-{i:02d}-{secrets.token_hex(4)}", X_Harness_Content_Hash=digest
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            answers[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    failed = [a for a in answers if not isinstance(a, httpx.Response)]
    assert not failed, failed
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] * 3 + [429] * 17, [(a.status_code, a.text[:300]) for a in answers]
    for refused in (a for a in answers if a.status_code == 429):
        body = _error(refused, 429, "daily quota is 3")
        assert re.search(r"the next submission is allowed at \S+", body["fix"]), body
        assert "retry-after" not in refused.headers or int(refused.headers["retry-after"]) > 60  # not a rate limit
    accepted = [a.json() for a in answers if a.status_code == 202]
    assert all(a["state"] == "checking" and len(a["entries"]) == 1 for a in accepted), accepted

    rows, person = _rows(server), _participant_id(server, "erin")
    mine_entries = [e for e in rows["entries"] if e[1] == person]
    mine_uploads = [u for u in rows["uploads"] if u[1] == person]
    assert sorted(e[0] for e in mine_entries) == sorted(a["entries"][0]["entry_id"] for a in accepted)
    assert [e[2] for e in mine_entries] == ["pending"] * 3
    assert sorted(u[0] for u in mine_uploads) == sorted(a["upload_id"] for a in accepted)
    assert [u[2] for u in mine_uploads] == ["checking"] * 3
    for upload_id, *_ in mine_uploads:  # each accepted upload's unpacked folder waits for its check
        assert len(list(server.uploads_dir.glob(f"{upload_id}-*"))) == 1
    assert list((server.uploads_dir / "incoming").iterdir()) == []


# 5. retries with one idempotency key ---------------------------------------------------------------------------


def test_a_retry_with_the_same_key_is_the_same_upload_and_other_content_is_409(server):
    fay = server.tokens["fay"]
    archive = pack(_project(server, "retry_tiny"))
    key = f"retry-{secrets.token_hex(8)}"
    first = _post(server, fay, archive, key=key)
    assert first.status_code == 202, first.text
    after_first = _snapshot(server)
    again = _post(server, fay, archive, key=key)
    assert again.status_code == 200, again.text
    assert again.json()["upload_id"] == first.json()["upload_id"]
    assert again.json()["entries"] == first.json()["entries"] and len(first.json()["entries"]) == 1
    _assert_nothing_left(server, after_first)

    other = pack(_project(server, "retry_other"))
    body = _refused(server, lambda: _post(server, fay, other, key=key), 409, key, "another archive")
    assert "new key" in body["fix"]
    # The key is the participant's own: another participant may use the same key for their own upload.
    hal = _post(server, server.tokens["hal"], archive, key=key)
    assert hal.status_code == 202 and hal.json()["upload_id"] != first.json()["upload_id"]


# 6. the rate limit ---------------------------------------------------------------------------------------------


def test_the_rate_limit_answers_429_with_retry_after(server):
    log = server.root / "limited.log"
    proc, url = _start(server.env, log, "--rate-limit", "5")
    try:
        token = server.tokens["bob"]
        answers = [
            httpx.get(url + "/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=30) for _ in range(7)
        ]
        assert [a.status_code for a in answers[:5]] == [200] * 5
        seventh = answers[6]
        _error(seventh, 429, "too many requests")
        assert int(seventh.headers["retry-after"]) >= 1
        assert seventh.json()["fix"] == f"retry in {seventh.headers['retry-after']} s"
        # Per token: another participant's token still passes (the address's limit is twice the token's).
        other = httpx.get(url + "/v1/me", headers={"Authorization": f"Bearer {server.tokens['alice']}"}, timeout=30)
        assert other.status_code == 200
        # Wrong tokens are limited per address: guessing does not go on for ever.
        guesses = [
            httpx.get(url + "/v1/me", headers={"Authorization": f"Bearer hxt_{i}"}, timeout=30).status_code
            for i in range(10)
        ]
        assert 429 in guesses and guesses[-1] == 429
    finally:
        _stop(proc)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["status"] for line in lines if line["path"] == "/v1/me"][:7] == [200] * 5 + [429] * 2


# 7. the access log ---------------------------------------------------------------------------------------------


def test_the_access_log_is_json_lines_with_names_and_no_token(server):
    before = server.log.read_text().splitlines()
    alice, bob = server.tokens["alice"], server.tokens["bob"]
    _get(server, alice, "/v1/me")
    _get(server, alice, "/v1/board")
    _get(server, "hxt_" + secrets.token_urlsafe(32), "/v1/me")
    _get(server, None, "/v1/health")
    _get(server, bob, "/v1/uploads/99999")
    _post(server, bob, b"x" * 100, content_type="text/plain")
    _post(server, bob, b"x" * 100, key=None)
    time.sleep(0.2)
    text_ = server.log.read_text()
    lines = [json.loads(line) for line in text_.splitlines()]  # every line is JSON, one per request
    new = lines[len(before) :]
    assert [(x["method"], x["path"], x["status"], x["participant"]) for x in new] == [
        ("GET", "/v1/me", 200, "alice"),
        ("GET", "/v1/board", 200, "alice"),
        ("GET", "/v1/me", 401, None),
        ("GET", "/v1/health", 200, None),
        ("GET", "/v1/uploads/99999", 404, "bob"),
        ("POST", "/v1/submissions", 415, "bob"),
        ("POST", "/v1/submissions", 400, "bob"),
    ], new
    assert {"time", "address", "ms", "bytes_in"} <= set(new[0]) and new[0]["address"] == "127.0.0.1"
    assert new[-1]["bytes_in"] == 100
    # No token anywhere in the log: not the valid ones, not the guessed one, not a part of one.
    assert "hxt_" not in text_
    assert not [t for t in server.tokens.values() if t.removeprefix("hxt_")[:16] in text_]
    assert text_.endswith("\n")


# 8. the client -------------------------------------------------------------------------------------------------


def test_harness_submit_takes_the_token_from_the_environment_and_refuses_a_readable_token_file(server):
    project = _project(server, "cli_tiny")
    env = {k: v for k, v in server.env.items() if not k.startswith("HARNESS_MAX")}
    env["HARNESS_HOME"] = str(server.root / "client-home")  # the participant's machine
    env["HARNESS_DB_URL"] = f"sqlite:///{server.root / 'client.db'}"
    gus = server.tokens["gus"]

    token_file = server.root / "token"
    token_file.write_text(gus + "\n")
    token_file.chmod(0o644)
    before = _snapshot(server)
    refused = run_cli("submit", str(project), "--server", server.url, "--token-file", str(token_file), env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and f"chmod 600 {token_file}" in refused.stderr
    assert "644" in refused.stderr and gus not in refused.stdout + refused.stderr
    _assert_nothing_left(server, before)

    # The token only in HARNESS_TOKEN (its local check is the slow part: the quick calls run meanwhile).
    submitting = subprocess.Popen(
        [str(EXE), "submit", str(project), "--server", server.url, "--no-wait", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env, "HARNESS_TOKEN": gus},
    )  # fmt: skip
    try:
        helptext = run_cli("submit", "--help", env=env)
        assert helptext.returncode == 0 and "--token-file" in helptext.stdout
        assert not re.search(r"--token(?!-)", helptext.stdout)
        no_option = run_cli("submit", str(project), "--server", server.url, "--token", gus, env=env)
        assert no_option.returncode == 2 and "No such option" in no_option.stderr
        token_file.chmod(0o600)  # the fix it named works
        status_cli = run_cli("status", "--server", server.url, "--token-file", str(token_file), "--json", env=env)
        assert status_cli.returncode == 0, status_cli.stderr[-2000:]
        assert json.loads(status_cli.stdout)["participant"] == "gus"
        out, err = submitting.communicate(timeout=300)
    finally:
        if submitting.poll() is None:
            submitting.kill()
            submitting.wait()
    assert submitting.returncode == 0, out[-2000:] + err[-3000:]
    status = json.loads(out)
    assert status["state"] == "checking" and [e["entry"] for e in status["entries"]] == ["cli_tiny"]
    assert gus not in out + err
    shown = _get(server, gus, "/v1/submissions").json()
    assert [u["upload_id"] for u in shown["uploads"]] == [status["upload_id"]]
