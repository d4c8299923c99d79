"""A submission's build runs its code (setup.py, an in-tree build backend): with `--runner docker` it runs in the
sandbox, never on the host (issue 20). Hostile projects try to write a marker file at a host path and to reach
a server on the host; under the docker runner neither happens and the check still ends with a clear outcome,
while the local runner (which trusts the code) builds on the host as before. The host-side parts (the command
line, what the host accepts from the sandbox, the injectable installer) are tested without a daemon."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from harness.errors import SubmissionError
from harness.runners.docker.command import DockerLimits, SandboxImage
from harness.runners.docker.install import SandboxInstaller, adopt
from harness.submission import content_hash, install
from tests.conftest import make_submission, run_cli
from tests.security.conftest import SANDBOX_ENV, LoopbackServer, sandbox_containers

# Runs on the host under the local runner, in the sandbox under the docker runner: leaves a marker at a host
# path, calls a server listening on the host, and (given `/staging`, the sandbox's target) plants a link there.
ATTACK = """
import os, socket

MARKER = {marker!r}
try:
    with open(MARKER, "w") as stream:
        stream.write("the build ran here")
except OSError:
    pass
for host in ("127.0.0.1", "172.17.0.1"):
    try:
        socket.create_connection((host, {port}), timeout=2).close()
    except OSError:
        pass
if {plant_link!r} and os.path.isdir("/staging") and not os.path.lexists("/staging/passwd"):
    os.symlink("/etc/passwd", "/staging/passwd")
if {fail!r}:
    raise SystemExit("HOSTILE BUILD REFUSES TO FINISH")
"""


@pytest.fixture()
def server():
    listening = LoopbackServer()
    yield listening
    listening.close()


def hostile_project(
    root: Path, how: str, marker: Path, port: int, plant_link: bool = False, fail: bool = False
) -> Path:
    """A real submission whose build runs ATTACK: from its setup.py (`how="setup.py"`) or from its in-tree build
    backend (`how="backend"`)."""
    folder = make_submission(root, "hostile")
    attack = ATTACK.format(marker=str(marker), port=port, plant_link=plant_link, fail=fail)
    if how == "setup.py":
        (folder / "setup.py").write_text(attack + "\nfrom setuptools import setup\n\nsetup()\n")
    else:
        (folder / "evil_backend.py").write_text(attack + "\nfrom setuptools.build_meta import *  # noqa\n")
        toml = (folder / "pyproject.toml").read_text()
        toml = toml.replace(
            'build-backend = "setuptools.build_meta"', 'build-backend = "evil_backend"\nbackend-path = ["."]'
        )
        (folder / "pyproject.toml").write_text(toml)
    return folder


# without a daemon ---------------------------------------------------------------------------------------------


def test_install_builds_through_the_installer_it_is_given(harness_env, tmp_path):
    sub = make_submission(tmp_path, "tiny")
    seen = []

    def installer(source: Path, staging: Path) -> tuple[int, str]:
        seen.append(source)
        assert (source / "pyproject.toml").is_file() and source != sub  # a copy, never the participant's folder
        (staging / "made").write_text("x")
        return 0, ""

    site = install(sub, "fake-" + content_hash(sub), installer=installer)
    assert len(seen) == 1 and (site / "made").is_file() and (site / ".installed").is_file()
    assert install(sub, "fake-" + content_hash(sub), installer=installer) == site and len(seen) == 1  # once

    def failing(source: Path, staging: Path) -> tuple[int, str]:
        return 1, "many\nlines\nERROR: the build failed here"

    with pytest.raises(SubmissionError, match="(?s)`pip install` of the submission failed:\n.*the build failed here"):
        install(sub, "fake2-" + content_hash(sub), installer=failing)


def test_the_install_container_is_locked_down(harness_env, tmp_path):
    limits = DockerLimits(memory="1g", pids=64)
    installer = SandboxInstaller(SandboxImage("harness-sandbox:test", "host"), limits, time_limit_s=30)
    source, made = tmp_path / "src", tmp_path / "made"
    source.mkdir()
    made.mkdir(mode=0o777)
    argv = installer.command(source, made, "harness-install-x", 212345)
    text = " ".join(argv)
    for flag in (
        "--network none",
        "--read-only",
        "--user 212345:212345",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        "--pids-limit 64",
        "--memory 1g",
        "--memory-swap 1g",
        "--label org.harness.sandbox=1",
    ):
        assert flag in text, flag
    mounts = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--mount"]
    assert f"type=bind,source={source},target=/src,readonly" in mounts
    assert f"type=bind,source={made},target=/staging" in mounts  # the one writable mount
    assert sum(not m.endswith(",readonly") for m in mounts) == 1
    assert argv[argv.index("harness-sandbox:test") + 1 :][:2] == ["-I", "-c"]
    pip = argv[argv.index("install") :]
    assert pip[:1] == ["install"] and {"--no-deps", "--no-build-isolation", "--no-compile"} <= set(pip)
    assert pip[-3:] == ["--target", "/staging", "/tmp/src"]


def test_the_host_takes_only_plain_files_from_the_sandbox(harness_env, tmp_path):
    made, staging = tmp_path / "made", tmp_path / "staging"
    (made / "pkg").mkdir(parents=True)
    (made / "pkg" / "mod.py").write_text("x = 1\n")
    (made / "pkg" / "tool").write_text("#!/bin/sh\n")
    (made / "pkg" / "tool").chmod(0o4777)  # setuid, world-writable: the copy is the host's, 0755
    (made / "pkg" / "mod.py").chmod(0o600)
    staging.mkdir()
    adopt(made, staging)
    assert (staging / "pkg" / "mod.py").read_text() == "x = 1\n"
    assert stat.S_IMODE((staging / "pkg" / "mod.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((staging / "pkg" / "tool").stat().st_mode) == 0o755
    for name, make in (("link", lambda p: p.symlink_to("/etc/passwd")), ("fifo", os.mkfifo)):
        bad, out = tmp_path / f"bad-{name}", tmp_path / f"out-{name}"
        bad.mkdir()
        out.mkdir()
        make(bad / "entry_points.txt")
        with pytest.raises(SubmissionError, match="entry_points.txt, which is not a plain file or folder"):
            adopt(bad, out)
    many, out = tmp_path / "many", tmp_path / "out-many"
    out.mkdir()
    for index in range(5):
        (many / str(index)).mkdir(parents=True)  # folders count too: 5 entries, more than twice 2
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_MAX_SUBMISSION_FILES", "2")
        with pytest.raises(SubmissionError, match="more than 4 files and folders"):
            adopt(many, out)


def test_no_daemon_no_build_on_the_host(harness_env, server, tmp_path):
    """Without docker, `check --runner docker` says so before anything is built (the build came first before)."""
    marker = tmp_path / "marker"
    sub = hostile_project(tmp_path, "setup.py", marker, server.port)
    out = run_cli("check", str(sub), "--runner", "docker", env={**harness_env, "PATH": str(tmp_path / "nowhere")})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "the `docker` CLI is not installed" in out.stderr and "scripts/start_docker.sh" in out.stderr
    assert not marker.exists() and server.connections == 0


# with a daemon --------------------------------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("how", ["setup.py", "backend"])
def test_a_hostile_build_runs_in_the_sandbox(docker_image, harness_env, server, tmp_path, how):
    marker = tmp_path / "marker"
    sub = hostile_project(tmp_path, how, marker, server.port)
    out = run_cli("check", str(sub), "--runner", "docker", "--json", env={**harness_env, **SANDBOX_ENV})
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"], report
    assert not marker.exists() and server.connections == 0
    assert not sandbox_containers()


@pytest.mark.slow
def test_the_same_build_runs_on_the_host_under_the_local_runner(harness_env, server, tmp_path):
    """The control: the attack is real, and the local runner (which trusts the code) still builds on the host."""
    marker = tmp_path / "marker"
    sub = hostile_project(tmp_path, "setup.py", marker, server.port)
    out = run_cli("check", str(sub), "--json", env=harness_env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["ok"]
    assert marker.read_text() == "the build ran here" and server.connections >= 1


@pytest.mark.docker
@pytest.mark.slow
def test_submit_stores_a_hostile_project_without_building_it_on_the_host(docker_image, harness_env, server, tmp_path):
    """`submit` installs twice (`check`, then `store_submission` from the stored copy): the second finds the
    site the sandbox made (same content hash) and builds nothing."""
    marker = tmp_path / "marker"
    sub = hostile_project(tmp_path, "backend", marker, server.port)
    out = run_cli("submit", str(sub), "--runner", "docker", "--json", env={**harness_env, **SANDBOX_ENV})
    assert out.returncode == 0, out.stdout + out.stderr
    assert not marker.exists() and server.connections == 0
    site = Path(harness_env["HARNESS_HOME"]) / "sites" / content_hash(sub)
    assert (site / "hostile_pkg" / "__init__.py").is_file()
    assert all(path.stat().st_uid == os.getuid() for path in site.rglob("*"))  # the host's copies


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize(
    ("plant_link", "fail", "expected"),
    [
        (False, True, "HOSTILE BUILD REFUSES TO FINISH"),
        (True, False, "the install made passwd, which is not a plain file or folder"),
    ],
)
def test_a_failed_sandboxed_install_is_a_clear_refusal(
    docker_image, harness_env, server, tmp_path, plant_link, fail, expected
):
    marker = tmp_path / "marker"
    sub = hostile_project(tmp_path, "setup.py", marker, server.port, plant_link=plant_link, fail=fail)
    out = run_cli("check", str(sub), "--runner", "docker", env={**harness_env, **SANDBOX_ENV})
    assert out.returncode == 2, out.stdout + out.stderr
    assert expected in out.stderr
    if fail:
        assert "`pip install` of the submission failed" in out.stderr
    assert not marker.exists() and server.connections == 0
    assert not (Path(harness_env["HARNESS_HOME"]) / "sites" / content_hash(sub)).exists()
    assert not sandbox_containers()


@pytest.mark.docker
@pytest.mark.slow
def test_an_honest_project_checks_the_same_in_the_sandbox(docker_image, harness_env, tmp_path):
    sub = make_submission(tmp_path, "honest_install")
    (sub / "honest_install_pkg" / "marker_for_hash.txt").write_text(str(tmp_path))  # its own site, built anew
    out = run_cli("check", str(sub), "--runner", "docker", "--json", env={**harness_env, **SANDBOX_ENV})
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["params"] > 0, report
