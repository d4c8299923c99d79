"""The sandbox's supervisor: PID 1 of a docker runner's container.

    python -m harness.sandbox.supervisor JOB.json --output-limit BYTES --deadline SECONDS

It runs the ingestion driver as its child (the child's stdout and stderr go to the container's stderr), waits
for it, kills every other process left in the container (`kill(-1, SIGKILL)`, which spares only PID 1), and
then writes to the container's stdout a few JSON frames (ready, the driver's timing markers stamped as they
arrive, the child's exit status and the cgroup's OOM-kill count) followed by a tar stream of the regular files
in `/out`. The container's stdout belongs to the supervisor alone: the child never inherits it, the supervisor
makes itself non-dumpable so that `/proc/1/fd` is closed to the sandbox's user, and as PID 1 of its namespace
it cannot be killed from inside. It runs the driver at nice 19, and ends the container by itself past its
deadline, should the runner on the host be gone. `harness.runners.docker` reads the frames on the host.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import IO, Any

MIB = 1 << 20
MARKER_FD = 3
FRAME_PREFIX = b"HARNESS-SUPERVISOR "
MAX_MARKERS = 64


class _Frames:
    def __init__(self) -> None:
        self.stream = sys.stdout.buffer
        self.lock = threading.Lock()

    def send(self, event: str, **fields: Any) -> None:
        line = FRAME_PREFIX + json.dumps({"event": event, **fields}).encode() + b"\n"
        with self.lock:
            self.stream.write(line)
            self.stream.flush()


def _make_undumpable() -> None:
    """PR_SET_DUMPABLE=0: /proc/1/{fd,mem,environ} become root's, so the sandbox's user cannot reach them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _oom_kills() -> int:
    """The container's memory cgroup's OOM-kill count (cgroup v2 or v1)."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return 0


def _relay_markers(read_fd: int, frames: _Frames) -> None:
    sent = 0
    with os.fdopen(read_fd, "rb") as pipe:
        for line in pipe:
            if sent < MAX_MARKERS:
                frames.send("mark", name=line[:64].decode("ascii", "replace").strip(), at=time.monotonic())
            sent += 1


def _yield_to_supervisor() -> None:
    """Run the driver (and all it forks) at nice 19. Inside the container's own CPU cgroup this only ranks the
    sandbox's processes below the supervisor, so that a fork bomb that saturates the container's CPU quota
    cannot starve the supervisor's clean-up; against the rest of the host the container competes as a whole."""
    os.nice(19)


def _kill_everything_else() -> None:
    """As PID 1: SIGKILL every process the sandbox's user owns (kill(-1) spares PID 1), and reap them."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _write_tar(out_dir: Path, stream: IO[bytes], max_bytes: int) -> None:
    total = 0
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(out_dir):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:
                    continue  # a symlink, a FIFO's peer, ...: never followed
                with os.fdopen(fd, "rb") as fh:
                    info = os.fstat(fh.fileno())
                    if not stat.S_ISREG(info.st_mode) or total + info.st_size > max_bytes:
                        continue
                    total += info.st_size
                    member = tarfile.TarInfo(os.path.relpath(path, out_dir))
                    member.size = info.st_size
                    member.mode = 0o644
                    tar.addfile(member, fh)


def supervise(job_path: str, output_limit: int, deadline_s: float, out_dir: str = "/out") -> int:
    """Run the ingestion driver as a child and hand its output folder to the host (see the module docstring).
    Past `deadline_s` the supervisor exits, which ends the container, even if no runner is left to stop it."""
    _make_undumpable()
    started = time.monotonic()
    deadline = threading.Timer(deadline_s, os._exit, args=(124,))
    deadline.daemon = True  # must not keep the supervisor alive once its work is done
    deadline.start()
    frames = _Frames()
    frames.send("ready")
    read_fd, write_fd = os.pipe()
    if read_fd == MARKER_FD:
        moved = os.dup(read_fd)
        os.close(read_fd)
        read_fd = moved
    if write_fd != MARKER_FD:
        os.dup2(write_fd, MARKER_FD)
        os.close(write_fd)
    child = subprocess.Popen(
        [sys.executable, "-m", "harness.sandbox.driver", job_path],
        stdin=subprocess.DEVNULL,
        stdout=2,
        stderr=2,
        pass_fds=(MARKER_FD,),
        cwd=out_dir,
        preexec_fn=_yield_to_supervisor,
    )
    os.close(MARKER_FD)
    relay = threading.Thread(target=_relay_markers, args=(read_fd, frames), daemon=True)
    relay.start()
    returncode = child.wait()
    exited = time.monotonic()
    _kill_everything_else()
    relay.join(timeout=10)
    frames.send(
        "exit",
        returncode=returncode,
        oom_kills=_oom_kills(),
        ingestion_s=exited - started,
        cleanup_s=time.monotonic() - exited,
    )
    frames.send("output")
    with frames.lock:
        _write_tar(Path(out_dir), frames.stream, output_limit)
        frames.stream.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m harness.sandbox.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("job")
    parser.add_argument("--output-limit", type=int, default=512 * MIB)
    parser.add_argument("--deadline", type=float, default=3600.0, help="seconds; then the container ends")
    args = parser.parse_args(argv)
    return supervise(args.job, args.output_limit, args.deadline)


if __name__ == "__main__":
    sys.exit(main())
