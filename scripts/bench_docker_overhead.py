"""Measure the docker runner's fixed overhead per run: the same ingestion job run by the local runner and by the
docker runner, alternately, several times.

    PYTHONPATH=. python scripts/bench_docker_overhead.py --repeats 5 [--json out.json]

Figures (medians over the repeats, seconds, all on the host's monotonic clock from the start of the run):
- `first_batch_s`: until the driver's first accuracy batch (its `first-batch` marker reached the host);
- `wall_s`: the whole run, including the teardown and, for docker, returning /out as a tar stream;
- `container_start_s` (docker only): until the supervisor inside the container answered.
The fixed overhead is the docker figure less the local one. The job is tiny (a 3-layer CNN on the digits test
split, quick latency profile) so that the model's own time is small beside the overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TINY = textwrap.dedent(
    """
    import torch
    from torch import nn
    from harness.contract import wrap_classifier

    def build(ctx):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                              nn.Linear(8, 10))
        return wrap_classifier(model)
    """
)


def write_submission(root: Path) -> Path:
    folder = root / "bench_tiny"
    (folder / "bench_tiny_pkg").mkdir(parents=True)
    (folder / "bench_tiny_pkg" / "__init__.py").write_text(TINY)
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "bench-tiny"
            version = "0.1.0"

            [project.entry-points."harness.submissions"]
            bench_tiny = "bench_tiny_pkg:build"

            [tool.setuptools]
            packages = ["bench_tiny_pkg"]

            [tool.harness]
            track = "classification"
            """
        )
    )
    return folder


def make_job(out_dir: Path):
    """The job `harness evaluate` would build for the submission (classification card, digits test split)."""
    from harness.datasets import materialize
    from harness.measure.environment import default_threads
    from harness.sandbox.job import IngestJob
    from harness.service.jobs import mac_inputs, track_fields
    from harness.submission import content_hash, install
    from harness.tracks import get_card

    card = get_card("classification")
    split = materialize(card.dataset, card.split)
    source = write_submission(Path(tempfile.mkdtemp(prefix="bench-src-")))
    site = install(source, content_hash(source))
    return IngestJob(
        mode="evaluate",
        site_dir=str(site),
        entry_name="bench_tiny",
        variant="fp32",
        device="cpu",
        out_dir=str(out_dir),
        inputs_dir=str(split.inputs_dir),
        profile="quick",
        threads=default_threads(),
        mac_inputs=mac_inputs(card, split.index()),
        **track_fields(card, split.hidden_dir),
    )


def run_local(job) -> dict[str, float]:
    """The local runner's way (a child process), with the marker pipe so the first batch is seen on arrival."""
    out_dir = Path(job.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    job.marker_fd = write_fd
    job.dump(out_dir / "job.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env["OMP_NUM_THREADS"] = str(job.threads)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.sandbox.driver", str(out_dir / "job.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write_fd,),
        env=env,
        cwd=out_dir,
    )
    os.close(write_fd)
    first_batch = None
    with os.fdopen(read_fd, "rb") as pipe:
        for line in pipe:
            if line.strip() == b"first-batch" and first_batch is None:
                first_batch = time.monotonic() - start
    proc.wait()
    wall = time.monotonic() - start
    if proc.returncode != 0 or first_batch is None:
        raise SystemExit(f"the local run failed (exit {proc.returncode})")
    return {"first_batch_s": first_batch, "wall_s": wall}


def run_docker(runner, job, time_limit_s: float) -> dict[str, float]:
    result = runner.run(job, time_limit_s)
    if not result.ok:
        raise SystemExit(f"the docker run failed: {result.error}\n{result.log_tail[-2000:]}")
    timings = result.measurements()["timings"]
    return {
        "container_start_s": timings["host_container_start_s"],
        "first_batch_s": timings["host_first_batch_s"],
        "wall_s": result.wall_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--image", default=None, help="sandbox image (default: HARNESS_DOCKER_IMAGE or harness-sandbox:local)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = parser.parse_args()

    from harness.runners.docker import DockerRunner

    home = Path(tempfile.mkdtemp(prefix="bench-docker-home-"))
    os.environ.setdefault("HARNESS_HOME", str(home))
    runner = DockerRunner(image=args.image)
    figures: dict[str, list[dict[str, float]]] = {"local": [], "docker": []}
    for i in range(args.repeats):
        for kind in ("local", "docker") if i % 2 == 0 else ("docker", "local"):
            job = make_job(home / "runs" / f"{kind}-{i}")
            row = run_local(job) if kind == "local" else run_docker(runner, job, 600)
            figures[kind].append(row)
            print(f"repeat {i + 1} {kind:6s} " + "  ".join(f"{k} {v:6.2f}" for k, v in row.items()), flush=True)

    def median(kind: str, key: str) -> float:
        return statistics.median(row[key] for row in figures[kind])

    summary = {
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "image": runner.image.name,
        "local_first_batch_s": median("local", "first_batch_s"),
        "docker_first_batch_s": median("docker", "first_batch_s"),
        "docker_container_start_s": median("docker", "container_start_s"),
        "local_wall_s": median("local", "wall_s"),
        "docker_wall_s": median("docker", "wall_s"),
    }
    summary["overhead_to_first_batch_s"] = summary["docker_first_batch_s"] - summary["local_first_batch_s"]
    summary["overhead_per_run_s"] = summary["docker_wall_s"] - summary["local_wall_s"]
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "runs": figures}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
