"""The local runner: the ingestion step as a child process on this machine. It trusts the submission's code:
there is no isolation beyond a process (use `--runner docker` for code you did not write).

The step runs in a process group of its own, on a leash (`harness.runners.leash`): the group is killed on a
timeout, on Ctrl-C or SIGTERM of the evaluator, and by the leash when the evaluator dies any other way (SIGKILL
included), so no submission keeps running, or writing its output folder, after the evaluator is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.runners.base import LOG_TAIL_CHARS, BaseRunner, IngestResult, StepExit, classify, kill_group
from harness.runners.leash import leashed
from harness.sandbox.job import IngestJob

# Variables the child must not inherit: it has no business knowing where the store or hidden data live.
SCRUBBED_ENV_PREFIXES = ("HARNESS_",)


class LocalRunner(BaseRunner):
    name = "local"
    trusted = True

    def run(self, job: IngestJob, time_limit_s: float) -> IngestResult:
        out_dir = Path(job.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        job_file = out_dir / "job.json"
        job.dump(job_file)
        env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_ENV_PREFIXES)}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["OMP_NUM_THREADS"] = str(job.threads)
        with tempfile.TemporaryFile() as log:
            start = time.monotonic()
            proc = subprocess.Popen(
                leashed([sys.executable, "-m", "harness.sandbox.driver", str(job_file)]),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=out_dir,
                start_new_session=True,
            )
            timed_out = False
            try:
                proc.wait(timeout=time_limit_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_group(proc)
            except BaseException:
                kill_group(proc)  # Ctrl-C or SIGTERM: never leave the submission running
                raise
            wall = time.monotonic() - start
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - LOG_TAIL_CHARS))
            tail = log.read().decode("utf-8", "replace")
        step = StepExit(proc.returncode, timed_out=timed_out, time_limit_s=time_limit_s)
        return classify(out_dir, step, tail, wall)
