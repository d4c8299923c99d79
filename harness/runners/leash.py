"""A leash: runs a command and kills its whole process group when the process that started the leash dies.

    python -I -S leash.py PARENT_PID [--cleanup ARGV_JSON] -- COMMAND...

A runner starts this file (standard library only, so it starts in milliseconds) as the leader of a new process
group. It asks Linux for a parent-death signal (`prctl(PR_SET_PDEATHSIG)`), then re-checks its parent: if the
evaluator died between the fork and the request, the signal would never come. When the evaluator dies, even by
SIGKILL, the leash runs the cleanup command (the docker runner's `docker rm --force NAME`: a container outlives
its `docker run` client) and kills its process group: the command and whatever the submission started in it.
Otherwise it waits for the command and ends as it ended (the same exit status, or the same signal), so the
runner classifies the step exactly as without a leash. The signal arrives when the *thread* that started the
leash ends: runners start it from the thread that then waits for it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
CLEANUP_TIMEOUT_S = 60


def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    parent = int(argv[0])
    cleanup: list[str] = []
    rest = argv[1:]
    if rest[:1] == ["--cleanup"]:
        cleanup, rest = json.loads(rest[1]), rest[2:]
    command = rest[1:] if rest[:1] == ["--"] else rest

    def parent_died(signum: int, _frame: object) -> None:
        if cleanup:
            try:
                subprocess.run(cleanup, stdin=subprocess.DEVNULL, capture_output=True, timeout=CLEANUP_TIMEOUT_S)
            except (OSError, subprocess.SubprocessError):
                pass
        os.killpg(0, signal.SIGKILL)  # the leash's own group: the command, its children, the leash itself

    signal.signal(signal.SIGTERM, parent_died)
    _die_with_parent(parent)
    child = subprocess.Popen(command)
    code = child.wait()
    if code < 0:  # end by the same signal (SIGKILL and SIGSTOP keep their default action anyway)
        if -code not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code  # a signal whose default action is to ignore it
    return code


def leashed(command: list[str], cleanup: list[str] | None = None) -> list[str]:
    """The argv that runs `command` on a leash held by this process (start it with `start_new_session=True`)."""
    extra = ["--cleanup", json.dumps(cleanup)] if cleanup else []
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid()), *extra, "--", *command]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
