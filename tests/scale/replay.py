"""An inner runner for the 500-job scale test: it replays the files of one real ingestion run instead of running
the model again. Everything around it (claims, Ray scheduling, the attempt process, the bytes sent back,
scoring against the hidden labels, the store writes) is the production path; only the model's work is reused,
because a fresh ingestion process costs several CPU-seconds (importing torch) and 500 of them would not fit.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from harness.runners import BaseRunner, IngestResult
from harness.sandbox.job import IngestJob

REPLAYED = ("predictions.npz", "measurements.json")


class ReplayRunner(BaseRunner):
    name = "replay"
    trusted = True

    def __init__(self, source: str):
        self.source = Path(source)

    def run(self, job: IngestJob, time_limit_s: float) -> IngestResult:
        start = time.monotonic()
        out_dir = Path(job.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in REPLAYED:
            shutil.copyfile(self.source / name, out_dir / name)
        log = f"replayed {', '.join(REPLAYED)} from {self.source} for {job.entry_name} [{job.variant}]"
        return IngestResult(True, out_dir, log_tail=log, wall_s=time.monotonic() - start)
