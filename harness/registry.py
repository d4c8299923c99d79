"""Entry-point discovery for the group `harness.submissions`: duplicates refused, near-miss names suggested.

Submissions are found exactly as third-party plugins are: through the installed distributions' entry
points, either in this Python environment or in the folder a submission was installed into by the
harness (`pip install --target`). Entry points are lazy `module:attr` targets; nothing is imported until
a submission is loaded.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as metadata
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SubmissionError

GROUP = "harness.submissions"


@dataclass(frozen=True)
class Registered:
    name: str
    target: str  # "module:attr"
    distribution: str


def discover(site_dir: Path | None = None) -> dict[str, Registered]:
    """All entry points of the group, from `site_dir` only when given, else from the environment."""
    dists = metadata.distributions(path=[str(site_dir)]) if site_dir else metadata.distributions()
    found: dict[str, Registered] = {}
    for dist in dists:
        dist_name = dist.metadata["Name"] or "?"
        for ep in dist.entry_points:
            if ep.group != GROUP:
                continue
            if ep.name in found and found[ep.name].distribution != dist_name:
                raise SubmissionError(
                    f"submission name `{ep.name}` is registered twice: by `{found[ep.name].distribution}` "
                    f"and by `{dist_name}`",
                    "give each entry point in the group harness.submissions a unique name",
                )
            found[ep.name] = Registered(ep.name, ep.value, dist_name)
    return found


def lookup(name: str, registered: dict[str, Registered]) -> Registered:
    if name in registered:
        return registered[name]
    near = difflib.get_close_matches(name, list(registered), n=1, cutoff=0.6)
    hint = f"did you mean `{near[0]}`?" if near else f"registered: {', '.join(sorted(registered)) or 'none'}"
    raise SubmissionError(f"no submission named `{name}` in the group {GROUP}", hint)


def load_target(target: str, site_dir: Path | None = None) -> object:
    """Import `module:attr`, with the submission's own folder first on the path."""
    if site_dir is not None and str(site_dir) not in sys.path:
        sys.path.insert(0, str(site_dir))
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise SubmissionError(
            f"entry point `{target}` fails to import: {type(exc).__name__}: {exc}",
            "run `python -c 'import " + module_name + "'` in the submission folder to see the full error",
        ) from exc
    obj: object = module
    for part in filter(None, attr.split(".")):
        if not hasattr(obj, part):
            raise SubmissionError(f"entry point `{target}`: module `{module_name}` has no attribute `{part}`")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SubmissionError(f"entry point `{target}` is not callable; it must be `build(ctx) -> Predictor`")
    return obj


def load_from_site(site_dir: Path, name: str) -> object:
    return load_target(lookup(name, discover(site_dir)).target, site_dir)
