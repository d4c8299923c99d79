"""Runners execute the ingestion step of jobs somewhere: a local process, a container, a Ray task.

Runners are registered like every other plugin (`harness.plugins`): the built-ins `local`, `docker` and
`ray`, and any class an entry point of the group `harness.runners` names. A runner's options are its
constructor's keyword arguments; one it does not take is an error, never silently ignored.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.plugins import Entry, Registry, builtin_entries, load_target
from harness.runners.base import LOG_TAIL_CHARS, BaseRunner, IngestResult, Runner, StepExit, classify

GROUP = "harness.runners"


def _load(entry: Entry, _site: Path | None) -> type:
    cls = load_target(entry.target, where=f"runner `{entry.name}` of `{entry.source}`")
    if not isinstance(cls, type):
        raise HarnessError(f"runner `{entry.name}` of `{entry.source}` is not a class")
    return cls


RUNNERS: Registry[type] = Registry(
    "runner",
    GROUP,
    loader=_load,
    builtins=builtin_entries(
        {
            "local": "harness.runners.local:LocalRunner",
            "docker": "harness.runners.docker:DockerRunner",
            "ray": "harness.runners.ray:RayRunner",
        }
    ),
    listing="use --runner local, docker or ray",
)


def get_runner(name: str, **options: Any) -> Runner:
    """A runner by name (a registered one, or `module:Class`), made with `options`."""
    cls = load_target(name) if ":" in name else RUNNERS.get(name)
    accepted = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = sorted(set(options) - set(accepted)) if not takes_any else []
    if unknown:
        flag = unknown[0].replace("_", "-")
        raise HarnessError(
            f"the {name} runner takes no option `{unknown[0]}`",
            f"--{flag} applies to runners that take it (see `harness evaluate --help`); drop it or choose that runner",
        )
    runner = cls(**options)
    if not isinstance(runner, Runner):
        raise HarnessError(f"runner `{name}` does not offer environment(), run() and run_many()")
    return runner


__all__ = [
    "LOG_TAIL_CHARS",
    "RUNNERS",
    "BaseRunner",
    "IngestResult",
    "Runner",
    "StepExit",
    "classify",
    "get_runner",
]
