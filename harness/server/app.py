"""The submission server's HTTP API (FastAPI; OpenAPI at /openapi.json, its page at /docs).

Every route but /v1/health needs `Authorization: Bearer TOKEN` (a participant's token of this server's
competition); a request without a valid one gets 401 and a JSON error. Errors are always JSON:
`{"error": what is wrong, "fix": how to fix it}`. Requests are rate-limited per token and per address; an
upload's body is limited before it is read past the limit; every request is logged as one JSON line."""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from harness.config import settings
from harness.errors import CompetitionError, HarnessError, UploadError
from harness.server.limits import RateLimiter

KEY = re.compile(r"[A-Za-z0-9_.:-]{8,128}")
CONTENT_HASH = re.compile(r"[0-9a-f]{64}")
SMALL_BODY = 64 * 1024  # what a request other than an upload may send


@dataclass
class ServerConfig:
    """What `harness server` sets: the competition, who checks uploads, limits, and where the log goes."""

    competition: str
    store: Any
    checker: Any
    behind_proxy: bool = False
    per_token_per_minute: float = 60.0
    per_address_per_minute: float = 120.0
    max_upload_bytes: int = field(default_factory=lambda: settings().max_upload_bytes)
    access_log: IO[str] = field(default_factory=lambda: sys.stderr)


class ApiError(Exception):
    def __init__(self, status: int, error: str, fix: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(error)
        self.status, self.error, self.fix, self.headers = status, error, fix, headers or {}


def _json_error(status: int, error: str, fix: str | None = None, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": error, "fix": fix}, status_code=status, headers=headers)


def create_app(config: ServerConfig) -> FastAPI:
    from harness.store.competitions import competition as competition_row

    row = competition_row(config.store, config.competition)
    if row is None:
        raise CompetitionError(f"no competition named `{config.competition}`", "harness competition create DIR")
    app = FastAPI(
        title=f"harness submission server: {row.title}",
        description="Upload submissions, follow their checks and runs, read the public board.",
        version="1",
    )
    app.state.config, app.state.competition_id = config, row.id
    limits = (RateLimiter(config.per_token_per_minute), RateLimiter(config.per_address_per_minute))
    app.middleware("http")(_guard(config, limits))
    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(HarnessError)(_harness_error)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_validation_error)
    _routes(app, config)
    return app


async def _api_error(request: Request, exc: ApiError) -> Response:
    return _json_error(exc.status, exc.error, exc.fix, exc.headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's own answers (no such route, a method the route lacks) in the API's error shape."""
    error = {404: f"no route {request.method} {request.url.path}", 405: f"{request.method} is not allowed here"}
    return _json_error(exc.status_code, error.get(exc.status_code, str(exc.detail)), "see /docs", exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5])
    return _json_error(422, f"the request does not fit the route: {problems}", "see /docs")


async def _harness_error(request: Request, exc: HarnessError) -> Response:
    return _json_error(_status_of(exc), exc.message, exc.hint)


def _status_of(exc: HarnessError) -> int:
    from harness.service.competitions import PhaseNotOpen, QuotaExceeded
    from harness.service.intake import IdempotencyConflict

    if isinstance(exc, QuotaExceeded):
        return 429
    if isinstance(exc, IdempotencyConflict | PhaseNotOpen):
        return 409
    return 400


def client_address(request: Request, behind_proxy: bool) -> str:
    """The client's address; behind a proxy, the one the proxy appended to X-Forwarded-For (the last)."""
    forwarded = request.headers.get("x-forwarded-for") if behind_proxy else None
    if forwarded:
        return forwarded.split(",")[-1].strip()[:64]
    return request.client.host if request.client else "-"


def _guard(config: ServerConfig, limits: tuple[RateLimiter, RateLimiter]) -> Callable:
    """The middleware: rate limits (per address, then per token), small bodies off the upload route, and one
    JSON access-log line per request (never the token)."""
    import hashlib

    per_token, per_address = limits

    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        address = client_address(request, config.behind_proxy)
        request.state.participant = None
        response = _limited(per_address, f"addr:{address}")
        token = _bearer(request)
        if response is None and token:
            response = _limited(per_token, "token:" + hashlib.sha256(token.encode()).hexdigest())
        length = request.headers.get("content-length")
        if response is None and request.url.path != "/v1/submissions" and length and int(length) > SMALL_BODY:
            response = _json_error(413, f"a request body of {int(length):,} bytes is too large for this route")
        if response is None:
            response = await call_next(request)
        _log(config.access_log, request, response, address, start)
        return response

    return guard


def _limited(limiter: RateLimiter, key: str) -> Response | None:
    wait = limiter.take(key)
    if wait <= 0:
        return None
    seconds = max(1, int(wait + 0.999))
    return _json_error(429, "too many requests", f"retry in {seconds} s", {"Retry-After": str(seconds)})


def _log(stream: IO[str], request: Request, response: Response, address: str, start: float) -> None:
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "address": address,
        "method": request.method,
        "path": request.url.path,
        "status": response.status_code,
        "ms": round((time.perf_counter() - start) * 1000, 2),
        "participant": request.state.participant,
        "bytes_in": int(request.headers.get("content-length") or 0),
    }
    try:
        stream.write(json.dumps(line) + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass  # a closed log never fails a request


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def participant(request: Request) -> Any:
    """The dependency of every private route: the participant whose token this is, or 401."""
    from harness.service.competitions import authenticate

    config: ServerConfig = request.app.state.config
    person = authenticate(config.store, request.app.state.competition_id, _bearer(request))
    if person is None:
        raise ApiError(
            401,
            "missing, unknown or revoked token",
            "send `Authorization: Bearer TOKEN` with the token the organiser gave you (HARNESS_TOKEN)",
            {"WWW-Authenticate": "Bearer"},
        )
    request.state.participant = person.name
    return person


def _routes(app: FastAPI, config: ServerConfig) -> None:
    from harness.service import intake
    from harness.service.competitions import board

    @app.get("/v1/health", summary="Liveness (no token needed)")
    def health() -> dict[str, Any]:
        return {"ok": True, "competition": config.competition}

    @app.get("/v1/me", summary="Who the token belongs to")
    def me(person: Any = Depends(participant)) -> dict[str, Any]:
        return {"participant": person.name, "team": person.team, "competition": config.competition}

    @app.post("/v1/submissions", status_code=202, summary="Upload a project (a gzip-compressed tar)")
    async def upload(request: Request, person: Any = Depends(participant)) -> Response:
        key, declared = _upload_headers(request)
        with tempfile.TemporaryDirectory(prefix="upload-", dir=_incoming()) as tmp:
            archive = Path(tmp) / "project.tar.gz"
            await _receive(request, archive, config.max_upload_bytes)
            status, fresh = await run_in_threadpool(
                intake.take_upload, config.store, config.competition, person, archive, key, declared
            )
        if fresh:
            config.checker.submit(status["upload_id"])
        return JSONResponse(status, status_code=202 if fresh else 200)

    @app.get("/v1/submissions", summary="Your uploads, entries and runs (public scores)")
    def submissions(person: Any = Depends(participant)) -> dict[str, Any]:
        return intake.own_submissions(config.store, config.competition, person)

    @app.get("/v1/uploads/{upload_id}", summary="One of your uploads")
    def upload_state(upload_id: int, person: Any = Depends(participant)) -> dict[str, Any]:
        found = intake.own_upload(config.store, person, upload_id)
        if found is None:
            raise ApiError(404, f"you have no upload {upload_id}")
        return found

    @app.get("/v1/runs/{run_id}", summary="One run of your entries")
    def run(run_id: int, person: Any = Depends(participant)) -> dict[str, Any]:
        found = intake.own_run(config.store, config.competition, person, run_id)
        if found is None:
            raise ApiError(404, f"you have no run {run_id}")
        return found

    @app.get("/v1/board", summary="The phase's public board")
    def public_board(person: Any = Depends(participant)) -> dict[str, Any]:
        return board(config.store, config.competition, private=False)


def _incoming() -> Path:
    folder = settings().uploads_dir / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _upload_headers(request: Request) -> tuple[str, str | None]:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip() not in ("application/gzip", "application/octet-stream"):
        raise ApiError(415, f"an upload is a gzip-compressed tar (application/gzip), not `{content_type}`")
    key = request.headers.get("idempotency-key", "")
    if not KEY.fullmatch(key):
        raise ApiError(400, "an upload needs an Idempotency-Key header: 8-128 letters, digits, `_.:-`")
    declared = request.headers.get("x-harness-content-hash")
    if declared is not None and not CONTENT_HASH.fullmatch(declared):
        raise ApiError(400, "X-Harness-Content-Hash must be the project's 64-hex content hash")
    return key, declared


async def _receive(request: Request, path: Path, limit: int) -> None:
    """Stream the body to `path`, refusing it (413) as soon as it is larger than `limit` (declared or sent)."""
    declared = request.headers.get("content-length")
    too_large = ApiError(
        413,
        f"the upload is larger than the server's limit of {limit / 2**20:,.0f} MiB",
        "leave large files out of the project (HARNESS_MAX_UPLOAD_MB is the organiser's setting)",
    )
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large
    received = 0
    with path.open("wb") as fh:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large
            fh.write(chunk)
    if received == 0:
        raise UploadError("the upload is empty", "send the project as a gzip-compressed tar")
