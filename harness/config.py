"""Every setting the harness reads from the environment, in one typed record.

`settings()` reads the `HARNESS_*` variables (and Ray's `RAY_ADDRESS`) each time it is called, so a test or a
server can change them; a malformed value is a user error naming the variable. The README lists them all
(a test checks that every field here is documented there).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

MIB = 1 << 20


def _positive(kind: type) -> Callable[[str, str], Any]:
    def parse(variable: str, text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise HarnessError(f"{variable}={text!r} is not a number", f"e.g. {variable}=256") from None
        if value <= 0:
            raise HarnessError(f"{variable}={text!r} must be positive")
        return value

    return parse


def _non_negative_int(variable: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise HarnessError(f"{variable}={text!r} is not an integer", f"e.g. {variable}=3") from None
    if value < 0:
        raise HarnessError(f"{variable}={text!r} must be 0 or more")
    return value


def _mib(variable: str, text: str) -> int:
    return _positive(int)(variable, text) * MIB


def _text(variable: str, text: str) -> str:
    return text


def _path(variable: str, text: str) -> Path:
    return Path(text).expanduser().resolve()


def _paths(variable: str, text: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser().resolve() for p in text.split(os.pathsep) if p)


def _resources(variable: str, text: str) -> dict[str, float]:
    try:
        parsed = json.loads(text)
        if not isinstance(parsed, dict):
            raise ValueError("not an object")
        return {str(k): float(v) for k, v in parsed.items()}
    except (ValueError, TypeError) as exc:
        raise HarnessError(
            f"{variable}={text!r} is not a JSON object of resource amounts ({exc})",
            f"e.g. {variable}='{{\"fake_gpu\": 1}}'",
        ) from None


def _setting(variable: str, parse: Callable[[str, str], Any], default: Any, doc: str) -> Any:
    if callable(default):
        return field(default_factory=default, metadata={"variable": variable, "parse": parse, "doc": doc})
    return field(default=default, metadata={"variable": variable, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """The harness's settings; each field names its variable, its parser and what it is for."""

    home: Path = _setting(
        "HARNESS_HOME", _path, lambda: Path(".harness").resolve(), "datasets, stored submissions, run outputs"
    )
    db_url: str = _setting("HARNESS_DB_URL", _text, "", "the store: any SQLAlchemy URL (default ./harness.db)")
    db_busy_timeout_ms: int = _setting(
        "HARNESS_DB_BUSY_TIMEOUT_MS", _positive(int), 30000, "how long a writer waits for a locked SQLite store"
    )
    tracks_path: tuple[Path, ...] = _setting(
        "HARNESS_TRACKS_PATH", _paths, tuple, "folders of extra track cards (*.toml), separated like PATH"
    )
    docker_image: str = _setting("HARNESS_DOCKER_IMAGE", _text, "harness-sandbox:local", "the sandbox image")
    docker_memory: str = _setting("HARNESS_DOCKER_MEMORY", _text, "4g", "a sandbox's memory (docker syntax)")
    docker_cpus: float | None = _setting(
        "HARNESS_DOCKER_CPUS", _positive(float), None, "a sandbox's CPUs (default: the job's threads)"
    )
    docker_pids: int = _setting("HARNESS_DOCKER_PIDS", _positive(int), 256, "a sandbox's processes")
    docker_output_bytes: int = _setting("HARNESS_DOCKER_OUTPUT_MB", _mib, 512 * MIB, "a sandbox's /out (MiB)")
    docker_tmp_bytes: int = _setting("HARNESS_DOCKER_TMP_MB", _mib, 256 * MIB, "a sandbox's /tmp (MiB)")
    docker_log_bytes: int = _setting(
        "HARNESS_DOCKER_LOG_MB", _mib, 64 * MIB, "stdout+stderr of a sandbox before it is stopped (MiB)"
    )
    ray_address: str | None = _setting("RAY_ADDRESS", _text, None, "the Ray cluster (default: a new local one)")
    ray_num_gpus: float | None = _setting(
        "HARNESS_RAY_NUM_GPUS", _positive(float), None, "GPUs per Ray task (default 1 with --device cuda)"
    )
    ray_num_cpus: float | None = _setting(
        "HARNESS_RAY_NUM_CPUS", _positive(float), None, "CPUs per Ray task (default: the job's threads)"
    )
    ray_resources: dict[str, float] = _setting(
        "HARNESS_RAY_RESOURCES", _resources, dict, "custom resources per Ray task, JSON"
    )
    ray_max_retries: int = _setting(
        "HARNESS_RAY_MAX_RETRIES", _non_negative_int, 3, "retries of a Ray task whose worker died"
    )
    ray_inner: str | None = _setting(
        "HARNESS_RAY_INNER", _text, None, "the runner inside a Ray task: local, docker or module:Class"
    )
    ray_files: str = _setting("HARNESS_RAY_FILES", _text, "auto", "how Ray tasks get their files: auto, ship, shared")
    run_lease_s: float = _setting(
        "HARNESS_RUN_LEASE_S", _positive(float), 120.0, "seconds a claimed run stays claimed without a heartbeat"
    )
    # Limits on files strangers write (predictions, ground truth, results files, submissions): refused before
    # they cost memory or time (harness/formats/limits.py).
    max_json_bytes: int = _setting(
        "HARNESS_MAX_JSON_MB", _mib, 512 * MIB, "largest COCO or results JSON file read (MiB), checked before parsing"
    )
    max_unpacked_bytes: int = _setting(
        "HARNESS_MAX_UNPACKED_MB", _mib, 64 * MIB, "largest unpacked size of an RRC zip's or folder's text files (MiB)"
    )
    max_archive_members: int = _setting(
        "HARNESS_MAX_ARCHIVE_MEMBERS", _positive(int), 100_000, "most members of an RRC zip (files of a folder)"
    )
    max_line_bytes: int = _setting(
        "HARNESS_MAX_LINE_BYTES", _positive(int), 8192, "longest line of an RRC text file (bytes)"
    )
    max_predictions_per_image: int = _setting(
        "HARNESS_MAX_PREDICTIONS_PER_IMAGE", _positive(int), 10_000, "most predictions of one image"
    )
    max_submission_bytes: int = _setting(
        "HARNESS_MAX_SUBMISSION_MB", _mib, 512 * MIB, "largest submission folder (MiB, files' apparent sizes)"
    )
    max_submission_files: int = _setting(
        "HARNESS_MAX_SUBMISSION_FILES", _positive(int), 10_000, "most files in a submission folder"
    )
    # The submission server (`harness server`): what one upload may be, checked before it is unpacked.
    max_upload_bytes: int = _setting(
        "HARNESS_MAX_UPLOAD_MB", _mib, 100 * MIB, "largest upload to the submission server (MiB, compressed)"
    )
    max_upload_files: int = _setting(
        "HARNESS_MAX_UPLOAD_FILES", _positive(int), 1_000, "most files in an upload to the submission server"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {}
        for item in fields(cls):
            text = env.get(item.metadata["variable"])
            if text:
                values[item.name] = item.metadata["parse"](item.metadata["variable"], text)
        return cls(**values)

    @property
    def store_url(self) -> str:
        return self.db_url or f"sqlite:///{Path('harness.db').resolve()}"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def submissions_dir(self) -> Path:
        return self.home / "submissions"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def sites_dir(self) -> Path:
        return self.home / "sites"

    @property
    def competitions_dir(self) -> Path:
        """Registered competition bundles (one folder per version) and their scoring parts."""
        return self.home / "competitions"

    @property
    def uploads_dir(self) -> Path:
        """Where the submission server unpacks uploads (each in a fresh folder, gone once checked)."""
        return self.home / "uploads"

    @property
    def keys_dir(self) -> Path:
        """The organisers' secret split keys (`<competition>.key`, mode 0600): outside every bundle."""
        return self.home / "keys"


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of this moment's environment."""
    return Settings.from_env(environ)


def variables() -> dict[str, str]:
    """{variable: what it is for}, for the documentation."""
    return {item.metadata["variable"]: item.metadata["doc"] for item in fields(Settings)}


def harness_home() -> Path:
    return settings().home


def db_url() -> str:
    return settings().store_url


def datasets_dir() -> Path:
    return settings().datasets_dir


def submissions_dir() -> Path:
    return settings().submissions_dir
