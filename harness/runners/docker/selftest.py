"""The sandbox's self-test: start one container exactly as a run would (flags and mounts) and check it from inside.

python -m harness.runners.docker selftest [--image IMAGE]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.runners.docker import DockerRunner
from harness.runners.docker.command import quiet
from harness.sandbox.job import IngestJob

SELFTEST_CODE = """
import json, os, socket, sys
report = {"uid": os.getuid(), "python": sys.version.split()[0]}
import numpy, PIL, torch
import harness.sandbox.driver
report["torch"] = torch.__version__
report["harness"] = os.path.dirname(harness.sandbox.driver.__file__)
try:
    open("/etc/harness-selftest", "w")
    report["root_read_only"] = False
except OSError:
    report["root_read_only"] = True
open("/out/probe", "w").write("x")
report["out_writable"] = True
report["interfaces"] = sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:])
print(json.dumps(report))
"""


def selftest(image: str | None = None) -> dict[str, Any]:
    """Start one sandbox exactly as a run would (flags and mounts) and check it from inside."""
    runner = DockerRunner(image=image)
    with tempfile.TemporaryDirectory(prefix="harness-selftest-") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        job = IngestJob(
            mode="check",
            site_dir=str(site),
            entry_name="selftest",
            track="selftest",
            kind="classification",
            variant="fp32",
            device="cpu",
            out_dir=str(Path(tmp) / "out"),
        )
        job_file = Path(tmp) / "job.json"
        job.dump(job_file)
        job_file.chmod(0o644)
        name = f"harness-selftest-{uuid.uuid4().hex[:8]}"
        argv = runner.command(job, name, job_file, inner=["-c", SELFTEST_CODE])
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        finally:
            quiet([runner.docker, "rm", "--force", name])
    if proc.returncode != 0:
        raise HarnessError(f"the sandbox self-test failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = []
    if report["uid"] == 0:
        problems.append("runs as root")
    if not report["root_read_only"]:
        problems.append("the root filesystem is writable")
    if report["interfaces"] != ["lo"]:
        problems.append(f"network interfaces {report['interfaces']}")
    if problems:
        raise HarnessError("the sandbox is not locked down: " + "; ".join(problems))
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m harness.runners.docker", description="the docker runner's tools")
    commands = parser.add_subparsers(dest="command", required=True)
    test = commands.add_parser("selftest", help="start one sandbox as a run would and check it from inside")
    test.add_argument("--image", default=None)
    args = parser.parse_args(argv)
    try:
        report = selftest(args.image)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"sandbox ok: {json.dumps(report)}")
    return 0
