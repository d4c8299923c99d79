"""A submission's install in the sandbox: building a project runs its code (a `setup.py`, an in-tree build
backend, setuptools' `cmdclass` and `attr:` look-ups), so a project nobody checked is built where its ingestion
runs, never on the host.

One container per install, with the ingestion containers' image and isolation (`command.isolation`: no network,
a read-only root, a fresh non-root uid, no capabilities, `no-new-privileges`, limits on processes, memory and
CPUs) and a time limit. Mounts: the copy of the source read-only at `/src`, a fresh, empty folder of the host's
as `/staging` (the only writable mount), and for a host-built image the interpreter and its environment,
read-only. The container's first process (`SCRIPT`, standard library only) copies `/src` into its `/tmp` (builds
write beside their sources), runs `python -m pip install --no-deps --no-build-isolation --no-compile --target
/staging` with the submission's code as its child, prints the tail of pip's output, and opens what was made to
the host's user. The host then only reads those files: it copies plain files and folders into the site (modes
reduced to 0644/0755, owned by the host's user, within bounded counts and sizes) and refuses anything else,
links included. It never imports them.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

from harness.config import settings
from harness.errors import HarnessError, SubmissionError
from harness.measure.environment import default_threads
from harness.runners.base import kill_group
from harness.runners.docker.command import (
    CONTAINER_LABEL,
    DockerLimits,
    SandboxImage,
    checked_mounts,
    interpreter_mounts,
    isolation,
    mount_flags,
    quiet,
    sandbox_uid,
)
from harness.runners.leash import leashed
from harness.submission import pip_arguments

MIB = 1 << 20
TAIL_BYTES = 16_000  # of pip's output, kept inside the container and again on the host
INSTALL_TIME_LIMIT_S = 600.0
COPY_CHUNK = 1 << 20
DOCKER_FAILED = 125  # `docker run`'s own exit status when it could not start the container

# The container's first process. argv: "install" PIP_ARGS... (the install), or "open" (only open up /staging).
SCRIPT = r"""
import os, shutil, subprocess, sys

def open_up(root):
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
                if os.path.islink(path):
                    continue
                folder_like = os.path.isdir(path)
                os.chmod(path, 0o777 if folder_like else (0o755 if info.st_mode & 0o111 else 0o644))
            except OSError:
                pass

code = 0
if sys.argv[1] == "install":
    shutil.copytree("/src", "/tmp/src")
    with open("/tmp/pip.log", "wb") as log:
        code = subprocess.run(
            [sys.executable, "-m", "pip", *sys.argv[2:]],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd="/tmp",
        ).returncode
    with open("/tmp/pip.log", "rb") as log:
        log.seek(max(0, os.path.getsize("/tmp/pip.log") - TAIL_BYTES))
        sys.stdout.buffer.write(log.read())
        sys.stdout.flush()
open_up("/staging")
sys.exit(code)
""".replace("TAIL_BYTES", str(TAIL_BYTES))


class SandboxInstaller:
    """A `harness.submission.Installer` that builds in the docker sandbox (see the module docstring)."""

    def __init__(
        self,
        image: SandboxImage,
        limits: DockerLimits | None = None,
        time_limit_s: float = INSTALL_TIME_LIMIT_S,
        docker: str = "docker",
    ):
        self.image = image
        self.limits = limits or DockerLimits.from_settings()
        self.time_limit_s = time_limit_s
        self.docker = docker

    def __call__(self, source: Path, staging: Path) -> tuple[int, str]:
        work = Path(tempfile.mkdtemp(prefix="harness-install-"))  # 0700: nobody else on the host reaches in
        made = work / "staging"
        made.mkdir()
        made.chmod(0o777)  # the sandbox's uid writes here
        _open_to_sandbox(source)
        name = f"harness-install-{uuid.uuid4().hex[:16]}"
        uid = sandbox_uid()
        try:
            code, output = self._run(self.command(source, made, name, uid), name)
            if code == 0:
                adopt(made, staging)
        finally:
            quiet([self.docker, "rm", "--force", "--volumes", name])
            self._remove(work, made, uid)
        return code, output

    def command(self, source: Path | None, made: Path, name: str, uid: int) -> list[str]:
        """The `docker run` command line of the install of `source` into `made` (without a source: of a
        container that only opens up what is in `made`)."""
        python = sys.executable if self.image.python == "host" else self.image.python
        build_bytes = self.limits.tmp_bytes + 3 * settings().max_submission_bytes  # the copy, the wheel, its files
        argv = [self.docker, "run", "--name", name, "--label", f"{CONTAINER_LABEL}=1"]
        argv += isolation(self.limits, default_threads(), uid, tmp_bytes=build_bytes)
        pairs = [(str(made), "/staging"), *interpreter_mounts(self.image)]
        pairs = checked_mounts(pairs + ([(str(source), "/src")] if source else []))
        argv += mount_flags(pairs, writable=frozenset({"/staging"}))
        env = {
            "HOME": "/tmp",
            "USER": "sandbox",
            "TMPDIR": "/tmp",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "PIP_NO_INDEX": "1",
            "PIP_NO_CACHE_DIR": "1",
            "PIP_NO_INPUT": "1",
        }
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        inner = ["install", *pip_arguments("/tmp/src", "/staging")] if source else ["open"]
        return [*argv, "--entrypoint", python, self.image.name, "-I", "-c", SCRIPT, *inner]

    def _run(self, argv: list[str], name: str) -> tuple[int, str]:
        """Run the container on a leash, keeping the tail of its output; stop it at the time limit."""
        cleanup = [self.docker, "rm", "--force", "--volumes", name]
        proc = subprocess.Popen(
            leashed(argv, cleanup),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        tail = bytearray()

        def read() -> None:
            for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):  # type: ignore[union-attr]
                tail.extend(chunk)
                del tail[:-TAIL_BYTES]

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        note = ""
        try:
            proc.wait(timeout=self.time_limit_s)
        except subprocess.TimeoutExpired:
            quiet([self.docker, "kill", name])
            proc.wait(timeout=120)
            note = f"\n[sandbox] the install did not finish within {self.time_limit_s:.0f} s"
        except BaseException:
            quiet([self.docker, "kill", name])  # Ctrl-C or SIGTERM: never leave the build running
            kill_group(proc)
            raise
        finally:
            reader.join(timeout=60)
        output = tail.decode("utf-8", errors="replace")
        if proc.returncode == DOCKER_FAILED and not note:
            raise HarnessError(
                f"docker could not start the install sandbox: {output.strip()[-600:]}",
                "run `python -m harness.runners.docker selftest` to see the problem",
            )
        state = quiet([self.docker, "inspect", "--format", "{{.State.OOMKilled}}", name])
        if state.stdout.strip() == "true":
            note += f"\n[sandbox] the install ran out of memory (limit {self.limits.memory})"
        return proc.returncode or (-1 if note else 0), output + note

    def _remove(self, work: Path, made: Path, uid: int) -> None:
        """Remove the container's files; when the host's user may not (the build kept them closed), a container
        of the same uid opens them up first."""
        shutil.rmtree(work, ignore_errors=True)
        if work.exists():
            name = f"harness-install-{uuid.uuid4().hex[:16]}"
            quiet(self.command(None, made, name, uid))
            quiet([self.docker, "rm", "--force", "--volumes", name])
            shutil.rmtree(work, ignore_errors=True)


def _open_to_sandbox(source: Path) -> None:
    """The source copy is the host's own: let the sandbox's uid (nobody here) read it."""
    for folder, dirs, files in os.walk(source):
        for name in dirs:
            (Path(folder) / name).chmod(0o755)
        for name in files:
            file = Path(folder) / name
            file.chmod(stat.S_IMODE(file.stat().st_mode) | 0o444)
    source.chmod(0o755)


def adopt(made: Path, staging: Path) -> None:
    """Copy what the sandbox made into `staging`: plain files and folders only, within twice the submission's
    limits of entries and bytes, with modes 0644 or 0755, owned by the host's user. Anything else is refused."""
    limits = settings()
    max_files, max_bytes = 2 * limits.max_submission_files, 2 * limits.max_submission_bytes
    count = total = 0
    for folder, dirs, files in os.walk(made):
        here = Path(folder)
        for name in sorted(dirs + files):
            info = (here / name).lstat()
            relative = (here / name).relative_to(made)
            if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
                raise SubmissionError(
                    f"the install made {relative}, which is not a plain file or folder",
                    "an installed submission holds plain files only",
                )
            count, total = count + 1, total + (info.st_size if stat.S_ISREG(info.st_mode) else 0)
            if count > max_files or total > max_bytes:
                raise SubmissionError(
                    f"the install made more than {max_files:,} files and folders or {max_bytes / MIB:,.0f} MiB",
                    "keep large files out of the package (twice the submission's limits, "
                    "HARNESS_MAX_SUBMISSION_FILES and HARNESS_MAX_SUBMISSION_MB)",
                )
            if stat.S_ISDIR(info.st_mode):
                (staging / relative).mkdir()
            else:
                _copy_plain(here / name, staging / relative, info.st_mode)


def _copy_plain(source: Path, target: Path, mode: int) -> None:
    handle = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(handle, "rb") as reader, target.open("xb") as writer:
        shutil.copyfileobj(reader, writer, COPY_CHUNK)
    target.chmod(0o755 if mode & 0o111 else 0o644)
