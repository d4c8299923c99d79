#!/usr/bin/env python
"""One command that measures, on an NVIDIA GPU, the figures issue 5 asks for in docs/BENCHMARKS.md.

    PYTHONPATH=. python scripts/gpu_measure.py --out DIR [--max-minutes 8]

(a) Latency agreement: torchvision resnet50 and mobilenet_v2 (random weights: latency does not depend on
    them) at batch 1 on 224x224, float32 and float16. The harness's device latency, as its performance pass
    takes it (the forward captured in a CUDA graph by `harness.measure.cudagraph.capture_forward`, replays
    timed by `harness.measure.latency.time_callable` with CUDA events per iteration), is compared, in the
    same process, with two independent measurements of a graph the script captures itself: a CUDA-event
    loop (one event pair around a block of replays, no per-iteration synchronisation) and
    `torch.utils.benchmark`. Three rounds of (harness, loop, benchmark), so that drifting conditions hit
    all three alike; the spread of the three harness figures is reported. The eager forward (host launch
    overhead included) is timed once beside them.
(b) Compression table: for each reference submission in `submissions/`, `harness evaluate` (a real CLI run,
    in a temporary HARNESS_HOME) with fp32, fp16 and compile on CUDA, and fp32 and int8-cpu on the CPU;
    the metric is re-measured on the test split for every variant. Cheap and needed jobs first (see
    `job_plan`); the rows are read from the store, so runs finished before a budget stop are kept.
(c) Accuracy-pass overhead of the small-object reference (fasterrcnn_small, fp32, CUDA): the fraction of
    the accuracy pass + scorer wall time spent outside the model's forward passes and the scorer, from the
    timings the ingestion driver records (forward time by CUDA events, without synchronising).

Writes DIR/gpu_measure.json (everything) and DIR/gpu_measure.md (a fragment for docs/BENCHMARKS.md), after
every part, so an interrupted run keeps what it measured. Each part runs in try/except and records its
error. A time budget (--max-minutes) is kept: the parts get deadlines, and table jobs that no longer fit are
listed as skipped. `--device cpu` runs the same code on the CPU (a smoke test: figures mean nothing).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Reference entries in the order they are measured when time is short: the small-object reference first
# (part c needs its fp32 run), then one classifier and text detector each, then the rest.
PRIORITY = ["fasterrcnn_small", "gtsnet", "mobilenet_v2", "craft_compact", "ghostnet", "shufflenet_v2_x0_5"]
GPU_VARIANTS = ["fp32", "fp16", "compile"]
CPU_VARIANTS = ["fp32", "int8-cpu"]
MODULES = [
    "torch",
    "torchvision",
    "numpy",
    "PIL",
    "sqlalchemy",
    "alembic",
    "typer",
    "rich",
    "safetensors",
    "sklearn",
    "pycocotools",
    "faster_coco_eval",
    "cv2",
    "onnxruntime",
    "torchao",
]


class Budget:
    def __init__(self, seconds: float):
        self.start = time.monotonic()
        self.seconds = seconds

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _error(exc: BaseException) -> dict[str, str]:
    return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}


# (a) latency agreement --------------------------------------------------------------------------------------


def event_loop_ms(fn: Any, device: str, iters: int = 200, blocks: int = 5, warmup: int = 50) -> float:
    """Median over blocks of (block time / iterations): CUDA events around whole blocks, on CPU the clock."""
    import torch

    for _ in range(warmup):
        fn()
    per_iter = []
    for _ in range(blocks):
        if device == "cuda":
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            end.synchronize()
            per_iter.append(start.elapsed_time(end) / iters)
        else:
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            per_iter.append((time.perf_counter() - t0) * 1000 / iters)
    return statistics.median(per_iter)


def own_graph(model: Any, x: Any) -> Any:
    """The independent side's CUDA graph of the forward, captured here with torch's API directly (not with
    the harness's `capture_forward`); returns its replay function."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            model(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model(x)
    torch.cuda.synchronize()
    return graph.replay


def host_share(fn: Any, device: str, iters: int = 500) -> dict[str, float]:
    """The harness's per-iteration timer run `iters` times: host wall time per iteration, and the share of
    it that the samples account for (the docker runner's timing check bounds samples by host time)."""
    from harness.measure.latency import _cpu_timer, _make_cuda_timer

    timer = _make_cuda_timer(device) if device == "cuda" else _cpu_timer
    t0 = time.perf_counter()
    total = sum(timer(fn) for _ in range(iters))
    host_ms = (time.perf_counter() - t0) * 1000 / iters
    return {"host_per_iteration_ms": host_ms, "sample_share_of_host": total / iters / host_ms}


def part_latency(device: str, profile_name: str, archs: list[str], dtypes: list[str]) -> dict[str, Any]:
    """Per model and precision: the harness's device latency as its performance pass measures it (the
    forward captured by `capture_forward`, replays timed by `time_callable`), against two independent
    measurements of the same forward's replays (own graph: an event loop, torch.utils.benchmark); three
    rounds of (harness, loop, benchmark) so that drifting conditions hit all three alike. Then, once, the
    eager forward (host launch overhead included) by the harness's timer and by the event loop."""
    import torch
    import torch.utils.benchmark as benchmark
    import torchvision

    from harness.measure.cudagraph import capture_forward
    from harness.measure.environment import clock_noise_reasons, read_sm_clock
    from harness.measure.latency import PROFILES, time_callable

    profile = PROFILES[profile_name]
    smoke = device == "cpu"  # a smoke test of the code path: few iterations
    if device == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shape, as in the harness's performance pass
        torch.backends.cudnn.allow_tf32 = False  # float32 computes in float32, as in the ingestion driver
        torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    for arch in archs:
        for dtype_name in dtypes:
            row: dict[str, Any] = {"model": arch, "dtype": dtype_name, "batch_size": 1, "input": "3x224x224"}
            try:
                torch.manual_seed(0)
                model = getattr(torchvision.models, arch)(weights=None).eval().to(device)
                x = torch.randn(1, 3, 224, 224, device=device)
                if dtype_name == "fp16":
                    model, x = model.half(), x.half()
                with torch.inference_mode():

                    def eager(model: Any = model, x: Any = x) -> Any:
                        return model(x)

                    for _ in range(3):
                        eager()
                    harness_fn, label, independent = eager, None, eager
                    if device == "cuda":
                        graphed, why_not = capture_forward(model, x)
                        row["why_not_graph"] = why_not
                        if graphed is not None:
                            harness_fn, label = graphed.graph.replay, "cuda-graph"
                        independent = own_graph(model, x)
                    row["harness_timer"] = label or ("cuda-events" if device == "cuda" else "perf_counter_ns")
                    clocks_before = read_sm_clock(torch.cuda.current_device(), harness_fn) if not smoke else None
                    rounds = []
                    for _ in range(3):
                        summary = time_callable(harness_fn, profile, "device", 1, device, timer_label=label)
                        loop_ms = event_loop_ms(independent, device, *((10, 3, 3) if smoke else (200, 5, 50)))
                        timer = benchmark.Timer(stmt="fn()", globals={"fn": independent})
                        bench_ms = timer.blocked_autorange(min_run_time=0.5 if smoke else 1.0).median * 1000
                        rounds.append((summary, loop_ms, bench_ms))
                    clocks_after = read_sm_clock(torch.cuda.current_device(), harness_fn) if not smoke else None
                    eager_summary = time_callable(eager, profile, "device", 1, device)
                    eager_loop = event_loop_ms(eager, device, *((10, 3, 3) if smoke else (200, 5, 50)))
                    row.update(host_share(harness_fn, device, 50 if smoke else 500))
                harness_ms = [r[0].ranked_ms for r in rounds]
                loops = [r[1] for r in rounds]
                benches = [r[2] for r in rounds]
                median_harness = statistics.median(harness_ms)
                median_loop, median_bench = statistics.median(loops), statistics.median(benches)
                row.update(
                    {
                        "harness_ranked_ms": harness_ms,
                        "harness_cv": [r[0].cv for r in rounds],
                        "harness_noise_reasons": [r[0].noise_reasons for r in rounds],
                        "harness_iterations": [r[0].iterations for r in rounds],
                        "event_loop_ms": loops,
                        "torch_utils_benchmark_ms": benches,
                        "diff_vs_event_loop_pct": [100 * (h - e) / e for h, e in zip(harness_ms, loops, strict=True)],
                        "diff_vs_torch_benchmark_pct": [
                            100 * (h - t) / t for h, t in zip(harness_ms, benches, strict=True)
                        ],
                        "median_diff_vs_event_loop_pct": 100 * (median_harness - median_loop) / median_loop,
                        "median_diff_vs_torch_benchmark_pct": 100 * (median_harness - median_bench) / median_bench,
                        "repeat_spread_pct": 100 * (max(harness_ms) - min(harness_ms)) / median_harness,
                        "eager_harness_ms": eager_summary.ranked_ms,
                        "eager_harness_cv": eager_summary.cv,
                        "eager_event_loop_ms": eager_loop,
                        "clocks_before": clocks_before,
                        "clocks_after": clocks_after,
                        "clock_noise": clock_noise_reasons(clocks_before, clocks_after),
                    }
                )
                row["within_3pct_of_independent"] = abs(row["median_diff_vs_event_loop_pct"]) <= 3.0 and (
                    abs(row["median_diff_vs_torch_benchmark_pct"]) <= 3.0
                )
                row["three_runs_within_2pct"] = row["repeat_spread_pct"] <= 2.0
                del model, x
                if device == "cuda":
                    torch.cuda.empty_cache()
            except Exception as exc:
                row.update(_error(exc))
            rows.append(row)
    return {"profile": profile_name, "rows": rows}


# (b) compression table, (c) accuracy-pass overhead ----------------------------------------------------------


def reference_entries() -> list[dict[str, Any]]:
    """Entries of the reference submissions present in submissions/, in measuring order; entries marked
    `queue = false` (untrained, latency only) last."""
    entries = []
    for toml_path in sorted((ROOT / "submissions").glob("*/pyproject.toml")):
        data = tomllib.loads(toml_path.read_text())
        tool = data.get("tool", {}).get("harness", {})
        names = data.get("project", {}).get("entry-points", {}).get("harness.submissions", {})
        options = tool.get("entry", {})
        for name in names:
            queued = options.get(name, {}).get("queue", True) is not False
            entries.append(
                {"name": name, "folder": str(toml_path.parent), "track": tool.get("track"), "queued": queued}
            )
    order = {name: i for i, name in enumerate(PRIORITY)}
    return sorted(entries, key=lambda e: (not e["queued"], order.get(e["name"], len(order)), e["name"]))


def run_cli(args: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str, str]:
    """`python -m harness.cli ARGS`; on timeout an interrupt first (the CLI then stops its sandboxed child
    and releases its claim), a kill after 20 s."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        out, err = proc.communicate(timeout=max(1.0, timeout))
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return None, out, err + f"\n[gpu_measure] stopped after {timeout:.0f} s (time budget)"


def table_row(run: dict[str, Any]) -> dict[str, Any]:
    lat = run.get("latency") or {}
    e2e = run.get("latency_e2e") or {}
    details = run.get("details") or {}
    sweep = details.get("throughput") or {}
    info = details.get("variant_info") or {}
    return {
        "run_id": run.get("run_id"),
        "submission": run.get("submission"),
        "track": run.get("track"),
        "variant": run.get("variant"),
        "device": run.get("device"),
        "status": run.get("status"),
        "error": (run.get("error") or "")[:400] or None,
        "log_tail": (run.get("log_tail") or "")[-4000:] or None,  # only a run that did not finish ok has one
        "primary_metric": run.get("primary_metric"),
        "metric": (run.get("metrics") or {}).get(run.get("primary_metric")),
        "metrics": run.get("metrics"),
        "p50_ms": lat.get("ranked_ms"),
        "timer": lat.get("timer"),
        "why_not_graph": (details.get("device_timing") or {}).get("why_not_graph"),
        "p90_ms": lat.get("p90_ms"),
        "e2e_p50_ms": e2e.get("ranked_ms"),
        "noisy": lat.get("noisy"),
        "noise_reasons": lat.get("noise_reasons"),
        "throughput_per_s": sweep.get("best_samples_per_s"),
        "throughput_batch": sweep.get("best_batch_size"),
        "sweep_stopped": sweep.get("stopped"),
        "bytes": run.get("bytes"),
        "params": run.get("params"),
        "peak_memory_bytes": details.get("peak_memory_bytes"),
        "crosscheck_consistent": (details.get("crosscheck") or {}).get("consistent"),
        "int8_flow": (info.get("int8") or {}).get("flow"),
        "timings": details.get("timings"),
        "hardware_class": run.get("hardware_class"),
        "environment": run.get("environment"),
    }


def overhead(row: dict[str, Any]) -> dict[str, Any]:
    """Part (c) from the stored timings of one run."""
    t = row.get("timings") or {}
    accuracy, forward, scoring = t.get("accuracy_s"), t.get("accuracy_forward_s"), t.get("scoring_s")
    if not accuracy or forward is None or scoring is None:
        return {"error": "the run has no accuracy-pass timings", "timings": t}
    total = accuracy + scoring
    return {
        "run_id": row["run_id"],
        "accuracy_s": accuracy,
        "accuracy_forward_s": forward,
        "accuracy_forward_host_s": t.get("accuracy_forward_host_s"),
        "accuracy_preprocess_s": t.get("accuracy_preprocess_s"),
        "accuracy_postprocess_s": t.get("accuracy_postprocess_s"),
        "accuracy_wait_s": t.get("accuracy_wait_s"),
        "accuracy_validate_s": t.get("accuracy_validate_s"),
        "save_predictions_s": t.get("save_predictions_s"),
        "scoring_s": scoring,
        "outside_fraction": 1.0 - (forward + scoring) / total,
        "outside_forward_fraction_of_accuracy_pass": 1.0 - forward / accuracy,
        "within_10pct": 1.0 - (forward + scoring) / total <= 0.10,
    }


def job_plan(entries: list[dict[str, Any]], gpu: bool) -> list[tuple[str, list[str], str, list[str]]]:
    """(track, entries, device, variants) groups, cheapest and most needed first: the small-object fp32 run
    (part c), fp32/fp16 of everything, int8-cpu of the classifiers, then `compile` (minutes of compilation
    for detectors), then the rest."""
    queued = [e for e in entries if e["queued"]]
    cost = {"classification": 0, "text-detection": 1, "small-object": 2}  # cheapest track first
    tracks = sorted(dict.fromkeys(e["track"] for e in queued), key=lambda t: cost.get(t, 3))

    def names(track: str) -> list[str]:
        return [e["name"] for e in queued if e["track"] == track]

    plan: list[tuple[str, list[str], str, list[str]]] = []
    device = "cuda" if gpu else "cpu"
    if any(e["name"] == "fasterrcnn_small" for e in queued):
        plan.append(("small-object", ["fasterrcnn_small"], device, ["fp32"]))
    plan += [(t, names(t), device, ["fp32", "fp16"] if gpu else ["fp32"]) for t in tracks]
    plan += [(t, names(t), "cpu", CPU_VARIANTS) for t in tracks if t == "classification"]
    if gpu:
        plan += [(t, names(t), "cuda", ["compile"]) for t in tracks]
    plan += [(t, names(t), "cpu", CPU_VARIANTS) for t in tracks if t != "classification"]
    if gpu:  # untrained entries (e.g. the published CRAFT VGG16-BN): their latency only
        plan += [(e["track"], [e["name"]], "cuda", GPU_VARIANTS) for e in entries if not e["queued"]]
    return plan


def stored_rows(db_url: str, untrained: set[str]) -> list[dict[str, Any]]:
    """Every finished run of the temporary store (also those of a CLI call stopped by the time budget)."""
    from harness.service.evaluate import run_record
    from harness.store import open_store

    order = {name: i for i, name in enumerate(PRIORITY)}
    variant_order = {v: i for i, v in enumerate([*GPU_VARIANTS, "int8-cpu"])}
    rows = [
        {**table_row(run_record(run)), "untrained": run.submission.name in untrained}
        for run in open_store(db_url).runs()
        if run.status != "running"
    ]
    return sorted(
        rows,
        key=lambda r: (
            r["untrained"],
            order.get(r["submission"], len(order)),
            r["submission"],
            r["device"] != "cuda",
            variant_order.get(r["variant"], 9),
        ),
    )


def part_table(
    device: str,
    profile: str,
    budget: Budget,
    reserve_s: float,
    log: Any,
    only: list[str],
    jobs: set[str] | None = None,
) -> dict[str, Any]:
    entries = [e for e in reference_entries() if not only or e["name"] in only]
    home = Path(tempfile.mkdtemp(prefix="gpu-measure-home-"))
    db_url = f"sqlite:///{home / 'harness.db'}"
    env = {
        **os.environ,
        "HARNESS_HOME": str(home),
        "HARNESS_DB_URL": db_url,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    folders = {e["name"]: e["folder"] for e in entries}
    submitted: dict[str, int | None] = {}
    attempts: list[dict[str, Any]] = []
    plan = job_plan(entries, device == "cuda")
    if jobs:  # only these DEVICE:VARIANT or NAME/DEVICE:VARIANT jobs (a table measured over several calls)
        plan = [
            (t, [n for n in names if f"{d}:{v}" in jobs or f"{n}/{d}:{v}" in jobs], d, [v])
            for t, names, d, variants in plan
            for v in variants
        ]
        plan = [job for job in plan if job[1]]
    for track, names, job_device, variants in plan:
        label = f"{track} {','.join(names)} {job_device} {','.join(variants)}"
        if budget.left() - reserve_s < 20:
            attempts.append({"job": label, "skipped": "time budget"})
            continue
        for folder in dict.fromkeys(folders[n] for n in names):  # submitted in measuring order: store ids
            if folder not in submitted:
                code, _, err = run_cli(["submit", folder, "--json"], env, budget.left() - reserve_s)
                submitted[folder] = code
                log(f"submit {folder}: exit {code}")
                if code != 0:
                    attempts.append({"job": f"submit {folder}", "exit": code, "stderr": err[-2000:]})
        names = [n for n in names if submitted.get(folders[n]) == 0]
        if not names:
            attempts.append({"job": label, "skipped": "not submitted"})
            continue
        args = ["evaluate", "--track", track, "--device", job_device, "--profile", profile, "--json"]
        args += [a for n in names for a in ("-s", n)] + [a for v in variants for a in ("-v", v)]
        started = time.monotonic()
        code, _, err = run_cli(args, env, budget.left() - reserve_s)
        attempt = {"job": label, "exit": code, "wall_s": round(time.monotonic() - started, 1)}
        if code != 0:
            attempt["stderr"] = err[-3000:]
        attempts.append(attempt)
        log(f"{label}: exit {code}, {attempt['wall_s']} s")
    untrained = {e["name"] for e in entries if not e["queued"]}
    rows = stored_rows(db_url, untrained) if (home / "harness.db").exists() else []
    result: dict[str, Any] = {"profile": profile, "home": str(home), "rows": rows, "attempts": attempts}
    small = [
        r for r in rows if r["submission"] == "fasterrcnn_small" and r["variant"] == "fp32" and r["status"] == "ok"
    ]
    small = [r for r in small if r["device"] == "cuda"] or small
    result["overhead"] = overhead(small[0]) if small else {"error": "no finished fp32 run of fasterrcnn_small"}
    return result


# report -----------------------------------------------------------------------------------------------------


def _f(value: Any, fmt: str = "{:.3f}") -> str:
    return "-" if value is None else fmt.format(value)


def markdown(report: dict[str, Any]) -> str:
    env = report.get("environment", {})
    lines = [
        f"## GPU measurements ({env.get('gpu_name', report.get('device'))})",
        "",
        f"Command: `{report['command']}` ({report['started']}, {report.get('wall_s', 0):.0f} s).",
        f"Hardware class `{env.get('hardware_class', '?')}`; driver {env.get('driver', '?')}, CUDA "
        f"{env.get('cuda', '?')}, cuDNN {env.get('cudnn', '?')}, torch {env.get('torch', '?')}, power limit "
        f"{env.get('power_limit_w', '?')} W, SM clock max {env.get('sm_clock_max_mhz', '?')} MHz, ECC "
        f"{env.get('ecc', '?')}, MIG {env.get('mig', '?')}.",
        "",
    ]
    latency = report["parts"].get("latency", {})
    lines += [
        "### Device latency at batch 1: harness vs independent measurements",
        "",
        f"Harness: its performance pass's device latency (the forward captured by `capture_forward`, replays "
        f"timed by `time_callable`, `{latency.get('profile', '?')}` profile, CUDA events per replay). "
        "Independent, on a graph of the same forward captured by the script with torch's API: a CUDA-event loop "
        "(one event pair per block of 200 replays, median of 5 blocks) and `torch.utils.benchmark` "
        "(`blocked_autorange`, median). Three rounds, each harness, then loop, then benchmark. Eager: the same "
        "forward without a graph (host launch overhead included), harness timer and event loop, once. Random "
        "weights, 3x224x224 input on the GPU.",
        "",
        "| model | dtype | harness ms (3 rounds) | spread | event loop ms | Δ (median) | torch.utils.benchmark ms "
        "| Δ (median) | eager ms (harness / loop) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in latency.get("rows", []):
        if "error" in row:
            lines.append(f"| {row['model']} | {row['dtype']} | error: {row['error'][:200]} | | | | | | |")
            continue
        runs = ", ".join(f"{v:.4f}" for v in row["harness_ranked_ms"])
        loops = ", ".join(f"{v:.4f}" for v in row["event_loop_ms"])
        benches = ", ".join(f"{v:.4f}" for v in row["torch_utils_benchmark_ms"])
        timer = "" if row.get("harness_timer") == "cuda-graph" else f" ({row.get('harness_timer')})"
        lines.append(
            f"| {row['model']} | {row['dtype']} | {runs}{timer} | {row['repeat_spread_pct']:.2f}% | {loops} | "
            f"{row['median_diff_vs_event_loop_pct']:+.2f}% | {benches} | "
            f"{row['median_diff_vs_torch_benchmark_pct']:+.2f}% | {_f(row.get('eager_harness_ms'))} / "
            f"{_f(row.get('eager_event_loop_ms'))} |"
        )
    shares = [r for r in latency.get("rows", []) if "host_per_iteration_ms" in r]
    if shares:
        lines.append(
            "\nHost time per timed iteration (event pair, replay, synchronisation) and the share the samples "
            "account for: "
            + "; ".join(
                f"{r['model']} {r['dtype']} {r['host_per_iteration_ms']:.4f} ms, "
                f"{100 * r['sample_share_of_host']:.0f} %"
                for r in shares
            )
            + "."
        )
    if "error" in latency:
        lines.append(f"\nPart (a) failed: {latency['error']}")
    table = report["parts"].get("table", {})
    lines += [
        "",
        "### Compression table: each variant re-measured on the test split",
        "",
        f"`harness evaluate --profile {table.get('profile', '?')}` per submission and device, in a fresh "
        "HARNESS_HOME. Latency: device (model only) median of repeat medians at batch 1, timed as CUDA-graph "
        "replays where the forward captures faithfully (`timer` cuda-graph), eagerly otherwise (cuda-events; "
        "the reason is in gpu_measure.json); e2e: the eager predict, host included; throughput: best of the "
        "batch-size sweep (eager).",
        "",
        "| submission | variant | device | status | metric | p50 ms | p90 ms | timer | e2e p50 ms | best/s (batch) "
        "| bytes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table.get("rows", []):
        metric = f"{row['primary_metric']} {row['metric']:.4f}" if row["metric"] is not None else "-"
        status = row["status"] if row["status"] == "ok" else f"{row['status']}: {(row['error'] or '')[:120]}"
        if row.get("untrained"):
            metric = "untrained: latency only"
        noisy = "*" if row.get("noisy") else ""
        flow = f" ({row['int8_flow']})" if row.get("int8_flow") else ""
        throughput = (
            f"{row['throughput_per_s']:.0f} ({row['throughput_batch']})" if row.get("throughput_per_s") else "-"
        )
        size = f"{row['bytes'] / 2**20:.2f} MiB" if row.get("bytes") else "-"
        lines.append(
            f"| {row['submission']} | {row['variant']}{flow} | {row['device']} | {status} | {metric} | "
            f"{_f(row['p50_ms'])}{noisy} | {_f(row['p90_ms'])} | {row.get('timer') or '-'} | "
            f"{_f(row['e2e_p50_ms'])} | {throughput} | {size} |"
        )
    skipped = [a["job"] for a in table.get("attempts", []) if a.get("skipped")]
    if skipped:
        lines.append(f"\nNot measured (time budget or failed submit): {', '.join(skipped)}.")
    if "error" in table:
        lines.append(f"\nPart (b) failed: {table['error']}")
    lines.append("\n`*` noisy latency (reasons in gpu_measure.json).")
    over = table.get("overhead", {})
    lines += ["", "### Accuracy pass of the small-object reference: time outside the model and the scorer", ""]
    if not over or "error" in over:
        lines.append(f"Not measured: {over.get('error', 'part (b) did not run')}")
    else:
        lines += [
            "| accuracy pass s | forward s (CUDA events) | scorer s | outside forward+scorer | preprocess s | "
            "postprocess s | waiting for decoded images s |",
            "|---|---|---|---|---|---|---|",
            f"| {over['accuracy_s']:.3f} | {over['accuracy_forward_s']:.3f} | {over['scoring_s']:.3f} | "
            f"{100 * over['outside_fraction']:.1f}% | {_f(over.get('accuracy_preprocess_s'))} | "
            f"{_f(over.get('accuracy_postprocess_s'))} | {_f(over.get('accuracy_wait_s'))} |",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder for gpu_measure.json and gpu_measure.md.")
    parser.add_argument("--max-minutes", type=float, default=8.0, help="Wall-time budget of the whole script.")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke test only.")
    parser.add_argument("--latency-profile", default="short", help="Harness profile for part (a).")
    parser.add_argument("--table-profile", default="quick", help="Harness profile for part (b).")
    parser.add_argument("--parts", default="latency,table", help="Comma-separated: latency, table.")
    parser.add_argument("--submissions", default="", help="Comma-separated entry names (default: all present).")
    parser.add_argument(
        "--jobs",
        default="",
        help="Comma-separated jobs of part (b): DEVICE:VARIANT or NAME/DEVICE:VARIANT, e.g. cuda:compile,"
        "gtsnet/cpu:int8-cpu (default: all).",
    )
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    budget = Budget(args.max_minutes * 60)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": args.device,
        "python": platform.python_version(),
        "parts": {},
    }

    def log(message: str) -> None:
        print(f"[{budget.elapsed():6.1f} s] {message}", flush=True)

    def save() -> None:
        report["wall_s"] = budget.elapsed()
        (args.out / "gpu_measure.json").write_text(json.dumps(report, indent=1, default=str))
        try:
            text = markdown(report)
        except Exception as exc:  # the JSON has everything; the fragment must not take it down
            text = f"Rendering the Markdown fragment failed: {type(exc).__name__}: {exc}\n"
        (args.out / "gpu_measure.md").write_text(text)

    if args.child:
        return child_main(args)
    # This process never touches the GPU: a CUDA context held here would be "another compute process on
    # the GPU" for every evaluation of part (b). Part (a) runs in a child process.
    report["modules"] = {name: "ok" if importlib.util.find_spec(name) is not None else "missing" for name in MODULES}
    save()
    parts = args.parts.split(",")
    if "latency" in parts:
        log("part (a): latency agreement (child process)")
        try:
            child = run_child("latency", args, timeout=min(max(60.0, budget.left() - 120.0), 240.0))
            report["environment"] = child.get("environment", {})
            report["parts"]["latency"] = child.get("latency", child)
        except Exception as exc:
            report["parts"]["latency"] = _error(exc)
        save()
    if "table" in parts:
        log("parts (b) and (c): compression table, accuracy-pass overhead")
        try:
            only = [name for name in args.submissions.split(",") if name]
            jobs = {pair for pair in args.jobs.split(",") if pair}
            report["parts"]["table"] = part_table(args.device, args.table_profile, budget, 15.0, log, only, jobs)
        except Exception as exc:
            report["parts"]["table"] = _error(exc)
        save()
    if not report.get("environment"):
        rows = (report["parts"].get("table") or {}).get("rows") or []
        report["environment"] = next((r["environment"] for r in rows if r.get("environment")), {})
        save()
    log(f"wrote {args.out / 'gpu_measure.json'} and {args.out / 'gpu_measure.md'}")
    return 0


def run_child(part: str, args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gpu-measure-child-") as tmp:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", part, "--out", tmp]
        cmd += ["--device", args.device, "--latency-profile", args.latency_profile]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        result = Path(tmp) / "child.json"
        if not result.exists():
            return {"error": f"the child process exited with {proc.returncode}", "stderr": proc.stderr[-4000:]}
        return json.loads(result.read_text())


def child_main(args: argparse.Namespace) -> int:
    """Part (a), and the environment fingerprint, in their own process."""
    result: dict[str, Any] = {}
    try:
        from harness.measure.environment import fingerprint, hardware_class

        env = fingerprint(args.device)
        env["hardware_class"] = hardware_class(env)
        result["environment"] = env
    except Exception as exc:
        result["environment"] = _error(exc)
    try:
        smoke = args.device == "cpu"
        result["latency"] = part_latency(
            args.device,
            "quick" if smoke else args.latency_profile,
            ["mobilenet_v2"] if smoke else ["resnet50", "mobilenet_v2"],
            ["fp32"] if smoke else ["fp32", "fp16"],
        )
    except Exception as exc:
        result["latency"] = _error(exc)
    (args.out / "child.json").write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
