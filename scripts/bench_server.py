"""Throughput and latency of the submission server's acceptance path, beside a bare uvicorn endpoint (issue 20).

    .venv/bin/python scripts/bench_server.py                       # 8 clients x 10 uploads of ~10 MB, 3 runs
    .venv/bin/python scripts/bench_server.py --clients 8 --uploads 10 --mb 10 --runs 3 --docker-checks 2

Builds a temporary HARNESS_HOME and SQLite store, registers a classification competition without a quota (the
digits bundle of tests/test_competition_cli.py), adds one participant per client (each with a token) and writes
one valid submission project per client (the tiny CNN of tests/conftest.py) holding a `--mb` MiB file of seeded
random bytes, so that the packed archive is about that size. Every upload also gets its own counter file, so
that no two archives hold the same content.

It then starts, each in its own process on a free loopback port:
- the real server: `harness server -c COMP --check-workers 0 --rate-limit 1000000` (no sandboxed check is run:
  an upload is authenticated, streamed to disk under the size limit, hashed, unpacked safely, content-hashed,
  its manifest read, its store rows and quota places written, and answered 202);
- a bare endpoint: uvicorn serving a minimal Starlette app that streams the request body to a temporary file and
  answers 202 (the same bytes; no auth, unpacking or store).

For each, in every run: a warm-up (one upload per client), then `--clients` threads, each with its own httpx
client, start together on a barrier and upload `--uploads` archives one after another; every request's latency
is recorded. Printed per run: accepted uploads per second (accepted / wall time from the barrier to the last
answer), p50/p99 latency, and the server/bare ratios. The order of the two alternates from run to run.

After the runs, the time of the server's acceptance steps is taken in-process on one archive (sha256 of the
archive, safe unpack, content hash, and the whole of `intake.take_upload`) and, with `--docker-checks N`, how
long `harness check DIR --runner docker` of the same project takes (the sandboxed check the server runs in the
background when it has check workers).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMPETITION = "bench-cup"


# --- the bare endpoint (run in its own process: `bench_server.py --serve-bare PORT DIR`) -------------------------


def serve_bare(port: int, folder: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def upload(request: Request) -> JSONResponse:
        with tempfile.NamedTemporaryFile(dir=folder, prefix="bare-", delete=True) as fh:
            received = 0
            async for chunk in request.stream():
                received += len(chunk)
                fh.write(chunk)
            fh.flush()
        return JSONResponse({"received": received}, status_code=202)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/upload", upload, methods=["POST"]), Route("/v1/health", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, server_header=False)


# --- set-up ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def harness_cli(env: dict[str, str], *args: str) -> str:
    exe = Path(sys.executable).parent / "harness"
    result = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"harness {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def write_bundle(root: Path) -> Path:
    """The digits classification competition of the CLI tests, with no quota."""
    from tests.competition_fixtures import digits_bundle

    return digits_bundle(root, name=COMPETITION, per_day=None)


def write_project(root: Path, index: int, size: int) -> Path:
    """A valid submission project holding `size` bytes of seeded random data (incompressible)."""
    import numpy as np

    name = f"bench{index}"
    folder = root / name
    package = f"{name}_pkg"
    (folder / package).mkdir(parents=True)
    from tests.conftest import TINY_CNN  # the tiny CNN of the test suite

    (folder / package / "__init__.py").write_text(textwrap.dedent(TINY_CNN))
    (folder / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}-submission"
version = "0.1.0"

[project.entry-points."harness.submissions"]
{name} = "{package}:build"

[tool.setuptools]
packages = ["{package}"]

[tool.harness]
track = "classification"
"""
    )
    (folder / "data").mkdir()
    (folder / "data" / "blob.bin").write_bytes(np.random.default_rng(index).bytes(size))
    return folder


def archives(project: Path, tag: str, count: int) -> list[tuple[bytes, str]]:
    """`count` archives of the project, each with its own counter file: (archive bytes, content hash)."""
    from harness.submission import content_hash
    from harness.uploads import pack

    out = []
    for n in range(count):
        (project / "counter.txt").write_text(f"{tag}-{n}\n")
        out.append((pack(project), content_hash(project)))
    return out


def wait_up(url: str, proc: subprocess.Popen, seconds: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server at {url} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/v1/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server at {url} did not answer in {seconds:.0f} s")


# --- the load --------------------------------------------------------------------------------------------------


def load(url: str, path: str, tokens: list[str], work: list[list[tuple[bytes, str]]]) -> dict[str, Any]:
    """Each client (a thread with its own httpx client) uploads its archives one after another; all start on a
    barrier. Returns per-request latencies (s), statuses and the wall time."""
    import httpx

    barrier = threading.Barrier(len(tokens) + 1)
    latencies: list[float] = []
    statuses: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(token: str, mine: list[tuple[bytes, str]]) -> None:
        headers = {"Authorization": f"Bearer {token}", "User-Agent": "bench-server"}
        with httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(30.0, read=600.0)) as http:
            barrier.wait()
            for data, digest in mine:
                request_headers = {
                    "Content-Type": "application/gzip",
                    "Idempotency-Key": f"bench-{uuid.uuid4().hex}",
                    "X-Harness-Content-Hash": digest,
                }
                start = time.perf_counter()
                response = http.post(path, content=data, headers=request_headers)
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    statuses.append(response.status_code)
                    if response.status_code != 202:
                        errors.append(f"{response.status_code}: {response.text[:300]}")

    threads = [threading.Thread(target=client, args=(t, w)) for t, w in zip(tokens, work, strict=True)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return {"latencies": latencies, "statuses": statuses, "errors": errors, "wall_s": wall}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(result: dict[str, Any]) -> dict[str, Any]:
    accepted = sum(1 for s in result["statuses"] if s == 202)
    return {
        "uploads": len(result["statuses"]),
        "accepted": accepted,
        "wall_s": result["wall_s"],
        "per_s": accepted / result["wall_s"],
        "p50_ms": percentile(result["latencies"], 50) * 1000,
        "p99_ms": percentile(result["latencies"], 99) * 1000,
        "errors": result["errors"][:3],
    }


# --- in-process timing of the acceptance steps -----------------------------------------------------------------


def step_times(store: Any, project: Path, reps: int) -> dict[str, float]:
    """Median seconds of the server's steps on one archive of the project, in this process."""
    from harness.config import settings
    from harness.service import intake
    from harness.store.competitions import competition as competition_row
    from harness.store.competitions import participant
    from harness.submission import content_hash
    from harness.uploads import unpack

    config = settings()
    person = participant(store, competition_row(store, COMPETITION).id, "bench0")
    work = Path(tempfile.mkdtemp(prefix="steps-", dir=config.home))
    times: dict[str, list[float]] = {"sha256": [], "unpack": [], "content_hash": [], "take_upload": []}
    for n, (data, digest) in enumerate(archives(project, "steps", reps)):
        archive = work / f"{n}.tar.gz"
        archive.write_bytes(data)
        start = time.perf_counter()
        intake._file_sha256(archive)
        times["sha256"].append(time.perf_counter() - start)
        dest = work / f"unpacked-{n}"
        start = time.perf_counter()
        unpack(archive, dest, config.max_submission_bytes, config.max_upload_files, config.max_upload_bytes)
        times["unpack"].append(time.perf_counter() - start)
        start = time.perf_counter()
        content_hash(dest)
        times["content_hash"].append(time.perf_counter() - start)
        shutil.rmtree(dest)
        start = time.perf_counter()
        _, fresh = intake.take_upload(store, COMPETITION, person, archive, f"steps-{uuid.uuid4().hex}", digest)
        times["take_upload"].append(time.perf_counter() - start)
        assert fresh
    # An experiment in this process only: the same, with the installed distributions' entry points scanned once
    # (`harness.plugins.entry_points` reads every distribution's metadata on each call, several times an upload).
    import functools

    import harness.plugins

    scan = harness.plugins.entry_points
    harness.plugins.entry_points = functools.cache(scan)  # type: ignore[assignment]
    times["take_upload_scan_cached"] = []
    try:
        for n, (data, digest) in enumerate(archives(project, "cached", reps + 1)):
            archive = work / f"cached-{n}.tar.gz"
            archive.write_bytes(data)
            start = time.perf_counter()
            intake.take_upload(store, COMPETITION, person, archive, f"steps-{uuid.uuid4().hex}", digest)
            if n:  # the first call fills the cache
                times["take_upload_scan_cached"].append(time.perf_counter() - start)
    finally:
        harness.plugins.entry_points = scan  # type: ignore[assignment]
    shutil.rmtree(work)
    return {k: statistics.median(v) for k, v in times.items()}


def docker_checks(env: dict[str, str], project: Path, count: int) -> list[float] | str:
    if shutil.which("docker") is None:
        return "docker is not installed"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "docker is installed but its daemon does not answer"
    exe = Path(sys.executable).parent / "harness"
    out = []
    for _ in range(count):
        start = time.perf_counter()
        result = subprocess.run(
            [str(exe), "check", str(project), "--runner", "docker"], env=env, capture_output=True, text=True
        )
        out.append(time.perf_counter() - start)
        if result.returncode != 0:
            return f"harness check --runner docker failed ({result.returncode}): {result.stderr[-800:]}"
    return out


# --- main ------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (one participant each)")
    parser.add_argument("--uploads", type=int, default=10, help="uploads per client per run")
    parser.add_argument("--mb", type=float, default=10.0, help="MiB of random data in each project")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--step-reps", type=int, default=3, help="in-process timings of the acceptance steps")
    parser.add_argument("--docker-checks", type=int, default=0, help="time `harness check --runner docker` N times")
    parser.add_argument("--keep", action="store_true", help="keep the temporary HARNESS_HOME")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), args.serve_bare[1])
        return

    root = Path(tempfile.mkdtemp(prefix="bench-server-"))
    home = root / "home"
    home.mkdir()
    env = {**os.environ, "HARNESS_HOME": str(home), "HARNESS_DB_URL": f"sqlite:///{root / 'harness.db'}"}
    os.environ.update(HARNESS_HOME=env["HARNESS_HOME"], HARNESS_DB_URL=env["HARNESS_DB_URL"])
    procs: list[subprocess.Popen] = []
    report: dict[str, Any] = {"load": os.getloadavg(), "cpus": os.cpu_count(), "runs": []}
    try:
        harness_cli(env, "competition", "create", str(write_bundle(root)))
        tokens = []
        for i in range(args.clients):
            out = harness_cli(env, "participants", "add", f"bench{i}", "-c", COMPETITION)
            tokens.append(re.search(r"hxt_\S+", out).group(0))  # type: ignore[union-attr]
        size = int(args.mb * 2**20)
        projects = [write_project(root / "projects", i, size) for i in range(args.clients)]

        server_port, bare_port = free_port(), free_port()
        exe = Path(sys.executable).parent / "harness"
        server_log = (root / "server.log").open("w")
        procs.append(
            subprocess.Popen(
                [str(exe), "server", "-c", COMPETITION, "--host", "127.0.0.1", "--port", str(server_port)]
                + ["--check-workers", "0", "--rate-limit", "1000000", "--access-log", str(root / "access.log")],
                env=env,
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )
        )
        bare_dir = root / "bare"
        bare_dir.mkdir()
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--serve-bare", str(bare_port), str(bare_dir)],
                env=env,
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )
        )
        targets = {
            "server": (f"http://127.0.0.1:{server_port}", "/v1/submissions"),
            "bare": (f"http://127.0.0.1:{bare_port}", "/upload"),
        }
        wait_up(targets["server"][0], procs[0])
        wait_up(targets["bare"][0], procs[1])

        sizes = []
        for run in range(args.runs):
            tag = f"run{run}-{uuid.uuid4().hex[:8]}"
            start = time.perf_counter()
            warm = [archives(p, f"{tag}-warm", 1) for p in projects]
            work = [archives(p, tag, args.uploads) for p in projects]
            sizes.extend(len(data) for w in work for data, _ in w)
            pack_s = time.perf_counter() - start
            row: dict[str, Any] = {"run": run + 1, "load_before": os.getloadavg()[0], "pack_s": pack_s}
            for name in ("server", "bare") if run % 2 == 0 else ("bare", "server"):
                url, path = targets[name]
                warmed = summary(load(url, path, tokens, warm))
                if warmed["accepted"] != args.clients:
                    raise SystemExit(f"{name}: the warm-up was refused: {warmed['errors']}")
                row[name] = summary(load(url, path, tokens, work))
            row["load_after"] = os.getloadavg()[0]
            row["ratio"] = {
                "per_s": row["server"]["per_s"] / row["bare"]["per_s"],
                "p50": row["server"]["p50_ms"] / row["bare"]["p50_ms"],
                "p99": row["server"]["p99_ms"] / row["bare"]["p99_ms"],
            }
            report["runs"].append(row)
            _print_run(row, args)
            # The accepted uploads' unpacked folders wait for a check that never comes: free the disk.
            for folder in (home / "uploads").glob("[0-9]*-*"):
                shutil.rmtree(folder, ignore_errors=True)
        report["archive_mib"] = statistics.mean(sizes) / 2**20 if sizes else float("nan")

        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        procs.clear()

        from harness.store import open_store

        report["steps_s"] = step_times(open_store(), projects[0], args.step_reps)
        if args.docker_checks:
            (projects[0] / "counter.txt").unlink(missing_ok=True)
            report["docker_check_s"] = docker_checks(env, projects[0], args.docker_checks)
        report["load_end"] = os.getloadavg()
        _print_tail(report)
        if args.json:
            print(json.dumps(report, indent=2))
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def _print_run(row: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"run {row['run']}: {args.clients} clients x {args.uploads} uploads "
        f"(load {row['load_before']:.2f} -> {row['load_after']:.2f}; packing {row['pack_s']:.1f} s)"
    )
    for name in ("server", "bare"):
        s = row[name]
        print(
            f"  {name:6}  {s['accepted']}/{s['uploads']} accepted in {s['wall_s']:.2f} s: {s['per_s']:.2f} /s, "
            f"p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms" + (f"  errors: {s['errors']}" if s["errors"] else "")
        )
    r = row["ratio"]
    print(f"  server/bare: throughput x{r['per_s']:.2f}, p50 x{r['p50']:.2f}, p99 x{r['p99']:.2f}", flush=True)


def _print_tail(report: dict[str, Any]) -> None:
    print(f"archive: {report['archive_mib']:.2f} MiB on average")
    steps = report["steps_s"]
    parts = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in steps.items())
    print(f"acceptance steps in-process (median of the reps, one archive, no contention): {parts}")
    rest = steps["take_upload"] - steps["sha256"] - steps["unpack"] - steps["content_hash"]
    print(f"  take_upload less sha256, unpack and content hash (manifest, store rows, quota): {rest * 1000:.0f} ms")
    rest = steps["take_upload_scan_cached"] - steps["sha256"] - steps["unpack"] - steps["content_hash"]
    print(f"  the same with the entry-point scan cached (an experiment in this process): {rest * 1000:.0f} ms")
    checks = report.get("docker_check_s")
    if isinstance(checks, list):
        print("harness check --runner docker: " + ", ".join(f"{c:.1f} s" for c in checks))
    elif checks:
        print(f"harness check --runner docker: not measured: {checks}")
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in report["load_end"]))


if __name__ == "__main__":
    main()
