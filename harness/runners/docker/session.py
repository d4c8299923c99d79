"""The host's side of a sandbox's streams: the supervisor's frames (ready, timing markers, exit, then a tar
stream of `/out`) on stdout, the log on stderr (counted, only its tail kept)."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from harness.runners.base import LOG_TAIL_CHARS
from harness.sandbox.supervisor import FRAME_PREFIX

MIB = 1 << 20
MAX_FRAME_BYTES = 4096
CLOCK_SKEW_S = 0.05  # a supervisor's stamp may precede its frame's arrival on the host, never follow it by more
# What the driver writes into /out; anything else stays in the sandbox. Add a name here when the driver learns
# to write another file.
OUTPUT_FILES = ("predictions.npz", "measurements.json", "error.json")


@dataclass
class SessionRecord:
    """What the host saw of one container: supervisor frames with arrival times, streams, limits hit."""

    started: float = 0.0  # host monotonic clock when `docker run` was started
    ready: float | None = None  # when the supervisor's first frame arrived
    marks: list[tuple[str, float, float | None]] = field(default_factory=list)  # name, arrival, supervisor stamp
    exit: dict[str, Any] | None = None
    output_seen: bool = False
    output_error: str | None = None
    protocol_error: str | None = None
    log_bytes: int = 0
    log_tail: bytearray = field(default_factory=bytearray)
    flooded: threading.Event = field(default_factory=threading.Event)
    timed_out: bool = False
    docker_returncode: int | None = None
    state: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def phase_times(self) -> tuple[list[tuple[str, float]], float | None]:
        """(name, time) of each marker, on the supervisor's clock when it agrees with the host's, and the
        largest delay between a stamp and its arrival (None when the host's arrival times were used)."""
        stamps = [(name, at) for name, _, at in self.marks if at is not None]
        delays = [arrival - at for _, arrival, at in self.marks if at is not None]
        if self.marks and len(stamps) == len(self.marks) and all(-CLOCK_SKEW_S <= d <= 60 for d in delays):
            return stamps, max(delays)
        return [(name, arrival) for name, arrival, _ in self.marks], None

    def tail_text(self) -> str:
        return bytes(self.log_tail).decode("utf-8", "replace")[-LOG_TAIL_CHARS:]


def read_frames(stream: IO[bytes], session: SessionRecord, out_dir: Path, output_bytes: int) -> None:
    """The supervisor's frames: ready, mark, exit, then `output` followed by a tar stream of /out."""
    try:
        while True:
            line = stream.readline(MAX_FRAME_BYTES)
            if not line:
                return
            now = time.monotonic()
            if not line.startswith(FRAME_PREFIX) or not line.endswith(b"\n"):
                session.protocol_error = "the supervisor's stream was garbled"
                return
            try:
                frame = json.loads(line[len(FRAME_PREFIX) :])
                event = frame["event"]
            except (ValueError, KeyError, TypeError):
                session.protocol_error = "the supervisor sent an unreadable frame"
                return
            if event == "ready":
                session.ready = now
            elif event == "mark":
                at = frame.get("at")
                session.marks.append((str(frame.get("name", "?")), now, at if isinstance(at, float) else None))
            elif event == "exit":
                session.exit = frame
            elif event == "output":
                session.output_seen = True
                session.output_error = extract_output(stream, out_dir, output_bytes)
                return
    finally:
        _drain(stream)


def read_log(stream: IO[bytes], session: SessionRecord, max_bytes: int) -> None:
    """Count everything, keep only the tail; past `max_bytes` raise the flood flag (and keep draining)."""
    keep = LOG_TAIL_CHARS * 4  # bytes: a UTF-8 character is at most 4
    while True:
        chunk = stream.read1(1 << 16) if hasattr(stream, "read1") else stream.read(1 << 16)
        if not chunk:
            return
        session.log_bytes += len(chunk)
        session.log_tail += chunk
        if len(session.log_tail) > 2 * keep:
            del session.log_tail[:-keep]
        if session.log_bytes > max_bytes:
            session.flooded.set()


def _drain(stream: IO[bytes]) -> None:
    while stream.read(1 << 16):
        pass


def extract_output(stream: IO[bytes], out_dir: Path, max_bytes: int) -> str | None:
    """Unpack the supervisor's tar stream into `out_dir`: the driver's files (`OUTPUT_FILES`, regular files at
    the top level), at most `max_bytes` in all. Returns a reason when the stream was refused."""
    total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = PurePosixPath(member.name)
                if len(name.parts) != 1 or name.name not in OUTPUT_FILES:
                    continue
                total += member.size
                if total > max_bytes:
                    return f"the sandbox's output exceeds {max_bytes // MIB} MiB"
                target = out_dir / name.name
                source = tar.extractfile(member)
                if source is None:
                    continue
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
                with os.fdopen(fd, "wb") as fh:
                    shutil.copyfileobj(source, fh, 1 << 20)
    except (tarfile.TarError, OSError) as exc:
        return f"the sandbox's output could not be unpacked ({exc})"
    return None
