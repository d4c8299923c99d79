"""The docker runner's host-side checks (no daemon needed) and, with a daemon, its results against the local
runner's: the same submission gives the same metrics and complexity under both."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness.config import Settings
from harness.errors import HarnessError
from harness.runners.docker import DockerLimits, DockerRunner, SandboxImage
from harness.runners.docker.command import container_job, mounts
from harness.runners.docker.session import extract_output
from harness.sandbox.job import IngestJob
from harness.sandbox.measurements import Measurements, Rejected
from harness.verify import PHASES, check_npz, check_timing, read_error_file
from tests.conftest import make_submission, run_cli


def sanitize_measurements(data: dict, job: IngestJob) -> dict:
    """The host's reading of a measurements file, as JSON (what `harness.verify` stores)."""
    return Measurements.from_json(data, job.mode, job.batch_size).to_json()


def _job(tmp_path: Path, **overrides) -> IngestJob:
    fields = dict(
        mode="evaluate",
        site_dir=str(tmp_path),
        entry_name="tiny",
        track="classification",
        kind="classification",
        variant="fp32",
        device="cpu",
        out_dir=str(tmp_path / "out"),
        threads=2,
        batch_size=1,
    )
    fields.update(overrides)
    return IngestJob(**fields)


# the timing bound --------------------------------------------------------------------------------------------


def _marks(device_span: float, e2e_span: float) -> list[tuple[str, float]]:
    times = [0.0, 0.1, 0.1 + device_span, 0.2 + device_span, 0.2 + device_span + e2e_span, 0.3 + device_span + e2e_span]
    return list(zip(PHASES, times, strict=True))


def test_timing_bound_accepts_samples_that_fill_the_host_span():
    latency = {"device": {"samples_ms": [1.0] * 1000}, "e2e": {"samples_ms": [2.0] * 500}}
    spans = check_timing(_marks(1.05, 1.1), latency)
    assert spans["host_device_measure_s"] == pytest.approx(1.05)
    assert spans["host_e2e_measure_s"] == pytest.approx(1.1)
    assert spans["host_performance_s"] == pytest.approx(2.45)


def test_timing_bound_catches_under_reported_samples():
    # 1,000 samples of 0.1 ms = 0.1 s reported; 2 s passed. Floor: 0.5 * 2 - 0.1 - 1000 * 50 us = 0.85 s.
    latency = {"device": {"samples_ms": [0.1] * 1000}, "e2e": {"samples_ms": [2.0] * 500}}
    reported = r"\[tampered\] the device latency samples add up to 0\.100 s \(and 0\.000 s making their inputs\)"
    with pytest.raises(Rejected, match=reported + r", but 2\.000 s"):
        check_timing(_marks(2.0, 1.0), latency)


def test_timing_bound_catches_samples_longer_than_the_pass():
    # 3 s of samples in a 0.7 s performance pass: more than 1.5 * 0.7 + 1 = 2.05 s.
    latency = {"device": {"samples_ms": [1.0] * 1500}, "e2e": {"samples_ms": [1.0] * 1500}}
    with pytest.raises(Rejected, match="more than the 0.700 s"):
        check_timing(_marks(0.2, 0.2), latency)


@pytest.mark.parametrize(
    "marks",
    [
        [],  # the pipe was closed
        _marks(1.0, 1.0)[:-1],  # perf-end missing
        _marks(1.0, 1.0) + [("device:end", 9.0)],  # a forged duplicate
        [_marks(1.0, 1.0)[i] for i in (0, 2, 1, 3, 4, 5)],  # out of order
    ],
)
def test_timing_bound_needs_each_marker_once_in_order(marks):
    latency = {"device": {"samples_ms": [1.0] * 1000}, "e2e": {"samples_ms": [1.0] * 1000}}
    with pytest.raises(Rejected, match="did not reach the host once each and in order"):
        check_timing(marks, latency)


def test_supervisor_stamps_are_used_when_they_agree_with_the_host():
    from harness.runners.docker.session import SessionRecord

    session = SessionRecord()
    session.marks = [("perf-start", 10.30, 10.0), ("perf-end", 12.5, 12.2)]
    assert session.phase_times() == ([("perf-start", 10.0), ("perf-end", 12.2)], pytest.approx(0.3))
    # A stamp after its frame's arrival is not the host's clock: the arrival times are used instead.
    session.marks = [("perf-start", 10.0, 10.5), ("perf-end", 12.5, 12.2)]
    assert session.phase_times() == ([("perf-start", 10.0), ("perf-end", 12.5)], None)


# what comes back from the sandbox --------------------------------------------------------------------------


def _tar(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    buffer.seek(0)
    return buffer


def test_extract_output_keeps_only_the_drivers_files(tmp_path):
    link = tarfile.TarInfo("predictions.npz")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    stream = _tar(
        [
            link,
            ("measurements.json", b"{}"),
            ("../escape.json", b"x"),
            ("/abs.json", b"x"),
            ("sub/measurements.json", b"x"),
            ("junk.npz", b"x"),
            ("job.json", b"forged"),
        ]
    )
    (tmp_path / "job.json").write_text("host")
    assert extract_output(stream, tmp_path, 1 << 20) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json", "measurements.json"]
    assert (tmp_path / "job.json").read_text() == "host"
    assert not (tmp_path.parent / "escape.json").exists()


def test_extract_output_stops_at_the_cap(tmp_path):
    stream = _tar([("measurements.json", b"x" * 600), ("predictions.npz", b"y" * 600)])
    assert extract_output(stream, tmp_path, 1000) == "the sandbox's output exceeds 0 MiB"
    assert (tmp_path / "measurements.json").stat().st_size == 600 and not (tmp_path / "predictions.npz").exists()


def test_error_file_is_read_defensively(tmp_path):
    path = tmp_path / "error.json"
    assert read_error_file(path) is None
    path.write_text(json.dumps({"stage": "build", "message": "m" * 5000, "unavailable": "yes"}))
    message, unavailable = read_error_file(path)
    assert message == "[build] " + "m" * 2000 and unavailable is False
    path.write_text("[1, 2]")
    assert read_error_file(path) == ("the ingestion step wrote an unreadable error file", False)


def test_npz_with_an_oversized_header_is_refused_before_loading(tmp_path):
    path = tmp_path / "predictions.npz"
    np.savez(path, ids=np.asarray(["a"]), kind=np.asarray("classification"), logits=np.zeros((1, 10), np.float32))
    check_npz(path, 1 << 20)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**11, 10)})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("huge.npy", header.getvalue())
    with pytest.raises(Rejected, match="member huge.npy is shorter than its header"):
        check_npz(path, 1 << 20)
    with pytest.raises(Rejected, match="unpacks to more than 0 MiB"):
        check_npz(path, 100)


def _measurements(samples: list[float]) -> dict:
    return {
        "complexity": {"params": 10, "bytes": 40, "dtypes": {"float32": 10}, "macs": {"32x32": 100}, "macs_std": {}},
        "environment": {"device": "cpu"},
        "timings": {"load_s": 0.5},
        "crosscheck": {"images": 1, "consistent": True},
        "latency": {
            kind: {
                "samples_ms": samples,
                "repeat_sizes": [len(samples) // 2, len(samples) - len(samples) // 2],
                "timer": "perf_counter_ns",
                "ranked_ms": 0.0001,  # a forged summary: the host recomputes it from the samples
                "noise_reasons": ["CPU load average 3.0 on 2 cores during timing"],
            }
            for kind in ("device", "e2e")
        },
    }


def test_latency_statistics_are_recomputed_on_the_host(tmp_path):
    clean = sanitize_measurements(_measurements([1.0, 2.0, 3.0, 4.0]), _job(tmp_path))
    device = clean["latency"]["device"]
    # Repeats [1, 2] and [3, 4]: medians 1.5 and 3.5, ranked = their median 2.5.
    assert device["repeat_medians_ms"] == [1.5, 3.5] and device["ranked_ms"] == 2.5
    assert device["mean_ms"] == 2.5 and device["iterations"] == 4
    assert "CPU load average 3.0 on 2 cores during timing" in device["noise_reasons"] and device["noisy"]


def test_informational_details_come_back_bounded(tmp_path):
    """Throughput sweep, clocks, how the device latency was timed, what the variant did: kept as information
    (they were dropped before, so docker runs lacked what `harness compare` shows), but only as small JSON."""
    data = _measurements([1.0, 2.0, 3.0, 4.0])
    data["throughput"] = {"best_samples_per_s": 812.5, "best_batch_size": 16}
    data["device_timing"] = {"method": "cuda-events", "why_not_graph": "capture failed: ..."}
    data["variant_info"] = {"int8": {"flow": "fx"}}
    data["peak_rss_bytes"] = 123456789
    clean = sanitize_measurements(data, _job(tmp_path))
    for key in ("throughput", "device_timing", "variant_info", "peak_rss_bytes"):
        assert clean[key] == data[key]
    assert "clocks" not in clean  # absent stays absent
    data["throughput"] = {"sizes": list(range(100_000))}
    with pytest.raises(Rejected, match="`throughput` is not a small JSON object"):
        sanitize_measurements(data, _job(tmp_path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(complexity=[]), "`complexity` is not an object"),
        (lambda m: m["complexity"].update(params=-1), "`complexity.params` is -1"),
        (lambda m: m["complexity"].update(params=True), "`complexity.params` is True"),
        (lambda m: m["latency"]["e2e"]["samples_ms"].__setitem__(1, float("nan")), "samples_ms` is nan"),
        (lambda m: m["latency"]["device"].update(repeat_sizes=[1, 1]), "repeat_sizes` do not add up"),
        (lambda m: m["latency"].pop("e2e"), "`latency.e2e` is not an object"),
        (lambda m: m.update(environment={"x": "y" * 100_000}), "`environment` is not a small JSON object"),
        (lambda m: m["crosscheck"].update(consistent="yes"), "crosscheck.consistent` is not a boolean"),
    ],
)
def test_malformed_measurements_are_rejected_as_tampered(tmp_path, change, message):
    data = _measurements([1.0, 2.0, 3.0, 4.0])
    change(data)
    with pytest.raises(Rejected, match=r"\[tampered\]") as caught:
        sanitize_measurements(data, _job(tmp_path))
    assert message in str(caught.value)


# configuration ---------------------------------------------------------------------------------------------


def test_limits_from_the_environment():
    limits = DockerLimits.from_settings(
        Settings.from_env({"HARNESS_DOCKER_MEMORY": "2g", "HARNESS_DOCKER_PIDS": "64", "HARNESS_DOCKER_LOG_MB": "8"})
    )
    assert (limits.memory, limits.pids, limits.log_bytes) == ("2g", 64, 8 << 20)
    with pytest.raises(HarnessError, match="HARNESS_DOCKER_PIDS='many' is not a number"):
        DockerLimits.from_settings(Settings.from_env({"HARNESS_DOCKER_PIDS": "many"}))


def test_command_locks_the_sandbox_down(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HARNESS_HOME", str(home))
    monkeypatch.setenv("HARNESS_DB_URL", f"sqlite:///{tmp_path / 'harness.db'}")
    split = home / "datasets" / "digits" / "v1" / "test"
    (split / "inputs").mkdir(parents=True)
    site = home / "sites" / "abc"
    site.mkdir(parents=True, mode=0o700)
    runner = DockerRunner(SandboxImage("harness-sandbox:local", "host"), DockerLimits(memory="1g", pids=99))
    job = _job(tmp_path, site_dir=str(site), inputs_dir=str(split / "inputs"), device="cuda:1")
    (tmp_path / "job.json").write_text("{}")
    argv = runner.command(job, "harness-x", tmp_path / "job.json")
    text = " ".join(argv)
    for flag in (
        "--network none",
        "--read-only",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        "--pids-limit 99",
        "--ulimit nproc=99:99",
        "--memory 1g --memory-swap 1g",
        "--cpus 2",
        "--log-driver none",
        "--gpus device=1",
    ):
        assert flag in text, flag
    uid = int(argv[argv.index("--user") + 1].split(":")[0])
    assert argv[argv.index("--user") + 1] == f"{uid}:{uid}" and uid >= 200_000  # a fresh non-root uid per run
    assert f"uid={uid},gid={uid}" in text  # owns its /out
    mounts = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--mount"]
    assert all(m.endswith(",readonly") for m in mounts)
    assert f"type=bind,source={split / 'inputs'},target=/inputs,readonly" in mounts
    assert not any(str(split / "hidden") in m or str(home) + "," in m for m in mounts)
    assert site.stat().st_mode & 0o005 == 0o005  # the staged site was opened up for the sandbox's user
    inner = container_job(job)
    assert (inner.device, inner.inputs_dir, inner.out_dir, inner.marker_fd) == ("cuda:0", "/inputs", "/out", 3)


def test_a_mount_that_would_expose_the_store_is_refused(tmp_path, monkeypatch):
    """A harness home inside the Python environment would be mounted with it: refused."""
    import sys

    monkeypatch.setenv("HARNESS_HOME", str(Path(sys.prefix) / "harness-home"))
    runner = DockerRunner(SandboxImage("harness-sandbox:local", "host"))
    with pytest.raises(HarnessError, match="would expose"):
        mounts(runner.image, _job(tmp_path), tmp_path / "job.json")


# against the local runner ----------------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.slow
def test_same_metrics_under_local_and_docker(docker_image, reference_store, tmp_path):
    """The classification references' fp32 runs under the local runner (the session's reference store, made by
    `harness evaluate`) against the same stored submissions evaluated again, in a copy of that store, under
    `--runner docker` (`--force`: the runner is not part of what makes two runs the same run)."""
    from tests.security.conftest import SANDBOX_ENV

    local_runs = {r["submission"]: r for r in reference_store.fp32("classification")}
    env = {**reference_store.copy_to(tmp_path), **SANDBOX_ENV}
    out = run_cli(
        "evaluate",
        "-t",
        "classification",
        "-v",
        "fp32",
        "--runner",
        "docker",
        "--force",
        "--json",
        env=env,
        timeout=3600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    docker_runs = {r["submission"]: r for r in json.loads(out.stdout)}
    assert docker_runs.keys() == local_runs.keys()
    for name, local in local_runs.items():
        docker = docker_runs[name]
        assert local["status"] == docker["status"] == "ok", (local["error"], docker["error"])
        assert docker["runner"] == "docker" and local["runner"] == "local"
        assert docker["submission_hash"] == local["submission_hash"]
        assert docker["metrics"] == local["metrics"], name
        assert (docker["params"], docker["bytes"], docker["macs"]) == (local["params"], local["bytes"], local["macs"])
        # The performance pass's details come back through the sandbox too (sweep, what the variant did).
        assert docker["details"]["throughput"]["best_samples_per_s"] > 0
        assert docker["details"].keys() >= local["details"].keys() - {"clocks", "device_timing"}


@pytest.mark.docker
@pytest.mark.slow
def test_check_in_the_sandbox_matches_the_local_check(docker_image, harness_env, tmp_path):
    from tests.security.conftest import SANDBOX_ENV

    sub = make_submission(tmp_path, "tiny")
    env = {**harness_env, **SANDBOX_ENV}
    reports = {}
    for runner in ("local", "docker"):
        out = run_cli("check", str(sub), "--runner", runner, "--json", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        reports[runner] = json.loads(out.stdout)
    assert reports["docker"] == reports["local"]


@pytest.mark.docker
def test_the_docker_runner_catches_a_rewritten_measurements_file(docker_image, harness_env, tmp_path):
    from tests.conftest import TAMPERING_CNN, assert_tampering_caught
    from tests.security.conftest import SANDBOX_ENV

    env = {**harness_env, **SANDBOX_ENV}
    sub = make_submission(tmp_path, "tamper", module_body=TAMPERING_CNN)
    assert run_cli("submit", str(sub), env=env).returncode == 0
    result = run_cli("evaluate", "--track", "classification", "--runner", "docker", "--json", env=env, timeout=900)
    assert_tampering_caught(result)


DAEMON_CNN = """
    import os
    from multiprocessing.connection import Connection

    import torch
    from torch import nn

    from harness.contract import ClassifierPredictor


    def serve(net, inbox, outbox):
        torch.set_num_threads(1)
        while True:
            x = inbox.recv()
            with torch.inference_mode():
                outbox.send(net(x))


    def build(ctx):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, ctx.num_classes or 10),
        ).eval()
        to_daemon, from_daemon = os.pipe(), os.pipe()
        middle = os.fork()
        if middle == 0:  # leave the session and the process tree: setsid, then fork again and let the middle exit
            os.setsid()
            if os.fork() == 0:
                serve(net, Connection(to_daemon[0], writable=False), Connection(from_daemon[1], readable=False))
            os._exit(0)
        os.waitpid(middle, 0)
        send, receive = Connection(to_daemon[1], readable=False), Connection(from_daemon[0], writable=False)
        scale = nn.Parameter(torch.ones(1))  # one weight read here, so that min_params is not what refuses it

        class Daemonised(ClassifierPredictor):
            def forward(self, x):
                send.send(x)
                return receive.recv() * scale

        return Daemonised(nn.Identity(), (0.5,) * 3, (0.25,) * 3)
"""


@pytest.mark.docker
def test_work_handed_to_a_process_outside_the_tree_is_found_in_the_sandbox(docker_image, harness_env, tmp_path):
    """A network run by a daemon (setsid and a double fork: neither in the driver's session nor below it) is
    invisible to the tracer; in the container every process is the sandbox's, so its CPU time counts as hidden
    work and `check` refuses it."""
    from tests.security.conftest import SANDBOX_ENV

    sub = make_submission(tmp_path, "daemonised", module_body=DAEMON_CNN)
    out = run_cli("check", str(sub), "--runner", "docker", env={**harness_env, **SANDBOX_ENV})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "ran most of its work on other threads or processes" in out.stdout + out.stderr
