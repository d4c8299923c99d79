"""One ingestion job: everything the driver inside the sandbox is told, as a JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class IngestJob:
    mode: str  # "check" | "evaluate" | "profile" (per-layer-type breakdown)
    site_dir: str  # where the submission is installed
    entry_name: str
    track: str
    kind: str
    variant: str
    device: str
    out_dir: str
    inputs_dir: str | None = None
    profile: str = "quick"
    threads: int = 1
    num_classes: int | None = None
    label_ids: list[int] | None = None
    input_size: list[int] | None = None
    accuracy_batch_size: int = 16
    batch_size: int = 1
    mac_inputs: dict[str, Any] = field(default_factory=dict)  # "HxW": {"size": [H, W]} | {"files": [...]}
    calibration_dir: str | None = None
    calibration_count: int = 128
    check_sample: int = 32  # at most this many images re-predicted in performance mode for the cross-check
    build_options: dict[str, Any] = field(default_factory=dict)  # the manifest's, handed over as ctx.extra
    throughput: bool = True  # batch-size sweep after the latency passes
    profile_iterations: int = 20  # profile mode: forward calls under the profiler
    marker_fd: int | None = None  # a pipe on which the runner timestamps the passes from outside the sandbox

    @classmethod
    def load(cls, path: Path) -> IngestJob:
        return cls(**json.loads(Path(path).read_text()))

    def dump(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
