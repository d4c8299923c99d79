"""One registry for everything the harness looks up by name: submissions, tracks, datasets, variants, runners.

A `Registry` holds lazy targets (`module:attr`, or a card file for tracks). The harness's built-ins are
registered exactly as third-party plugins are, through the same entries; others come from an entry-point group
of the installed distributions (`harness.submissions`, `harness.tracks`, `harness.datasets`,
`harness.variants`, `harness.runners`), and, for submissions and their own variants, of the folder a
submission was installed into. Nothing is imported until an entry is loaded. A name registered twice by
different sources is an error, never a silent overwrite; a name that is not registered gets the nearest one
suggested.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as metadata
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")

BUILTIN = "harness"  # the source of the harness's own entries


@dataclass(frozen=True)
class Entry:
    """One registered name: where its object lives and who registered it."""

    name: str
    target: str  # "module:attr" (attr may be dotted), or a file path for file-backed entries
    source: str  # BUILTIN, a distribution's name, or the folder a file-backed entry was found in


def suggest(name: str, known: Iterable[str], listing: str) -> str:
    """The fix for an unknown name: the nearest known name, else what to list."""
    near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"did you mean `{near[0]}`?" if near else listing


def load_target(target: str, site_dir: Path | None = None, where: str = "", error: type = HarnessError) -> Any:
    """Import `module:attr` (attr may be dotted), with `site_dir` first on the import path. Faults of the
    target (it does not import, has no such attribute) raise `error` naming `where`."""
    if site_dir is not None and str(site_dir) not in sys.path:
        sys.path.insert(0, str(site_dir))
    module_name, _, attr = target.partition(":")
    where = where or f"`{target}`"
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise error(
            f"{where} fails to import: {type(exc).__name__}: {exc}",
            f"run `python -c 'import {module_name}'` to see the full error",
        ) from exc
    for part in filter(None, attr.split(".")):
        if not hasattr(obj, part):
            raise error(f"{where}: module `{module_name}` has no attribute `{part}`")
        obj = getattr(obj, part)
    return obj


def entry_points(group: str, site_dir: Path | None = None) -> list[Entry]:
    """The entry points of `group` of the installed distributions, or of those installed in `site_dir`."""
    return list(_scan(str(site_dir) if site_dir else None).get(group, ()))


# Reading every installed distribution's metadata costs tens of milliseconds; a server asks many times a second.
# A scan is kept until a folder it read changes (installing or removing a distribution changes its folder's
# modification time): the folders of sys.path, or the one site folder.
_scans: dict[str | None, tuple[tuple, dict[str, list[Entry]]]] = {}


def _scan(site_dir: str | None) -> dict[str, list[Entry]]:
    import os
    import sys

    folders = [site_dir] if site_dir else list(sys.path)
    stamp = tuple((folder, os.stat(folder).st_mtime_ns if os.path.isdir(folder) else None) for folder in folders)
    kept = _scans.get(site_dir)
    if kept is not None and kept[0] == stamp:
        return kept[1]
    dists = metadata.distributions(path=[site_dir]) if site_dir else metadata.distributions()
    groups: dict[str, list[Entry]] = {}
    for dist in dists:
        source = dist.metadata["Name"] or "?"
        for ep in dist.entry_points:
            groups.setdefault(ep.group, []).append(Entry(ep.name, ep.value, source))
    _scans[site_dir] = (stamp, groups)
    return groups


class Registry(Generic[T]):
    """Named, lazily loaded objects of one kind.

    `builtins()` returns the harness's own entries (and any other fixed source, such as card files on a
    search path); `group` is the entry-point group searched in the environment. With `site_dir`, the entry
    points installed in that folder are added too, or, when `site_only`, are the only ones (a submission's
    folder holds exactly its own entry points). `loader(entry, site_dir)` turns an entry into the object."""

    def __init__(
        self,
        kind: str,
        group: str | None,
        loader: Callable[[Entry, Path | None], T],
        builtins: Callable[[], list[Entry]] = list,
        error: type[HarnessError] = HarnessError,
        listing: str = "",
        site_only: bool = False,
        cache: bool = True,
    ):
        """`cache=False` loads an entry again on every `get` (card files that may be edited while a server runs)."""
        self.kind, self.group, self.loader = kind, group, loader
        self.builtins, self.error, self.listing, self.site_only = builtins, error, listing, site_only
        self.cache = cache
        self._loaded: dict[tuple[str, str, str], T] = {}

    def entries(self, site_dir: Path | None = None) -> dict[str, Entry]:
        """Every name known here, by name; nothing is imported."""
        found: dict[str, Entry] = {}
        sources: list[Entry] = []
        if not (self.site_only and site_dir is not None):
            sources += self.builtins()
            if self.group:
                sources += entry_points(self.group)
        if site_dir is not None and self.group:
            sources += entry_points(self.group, Path(site_dir))
        for entry in sources:
            known = found.get(entry.name)
            if known is not None and known.source != entry.source:
                raise self.error(
                    f"{self.kind} name `{entry.name}` is registered twice: by `{known.source}` and by `{entry.source}`",
                    f"give each {self.kind} a name no other one uses"
                    + (f" (entry-point group {self.group})" if self.group else ""),
                )
            found[entry.name] = entry
        return found

    def names(self, site_dir: Path | None = None) -> list[str]:
        return sorted(self.entries(site_dir))

    def unknown(self, name: str, known: Iterable[str]) -> HarnessError:
        known = list(known)
        listing = self.listing or f"known: {', '.join(sorted(known)) or 'none'}"
        return self.error(f"unknown {self.kind} `{name}`", suggest(name, known, listing))

    def entry(self, name: str, site_dir: Path | None = None) -> Entry:
        entries = self.entries(site_dir)
        if name not in entries:
            raise self.unknown(name, entries)
        return entries[name]

    def get(self, name: str, site_dir: Path | None = None) -> T:
        """The object registered as `name` (loaded once per process)."""
        entry = self.entry(name, site_dir)
        if not self.cache:
            return self.loader(entry, site_dir)
        key = (entry.name, entry.source, entry.target)
        if key not in self._loaded:
            self._loaded[key] = self.loader(entry, site_dir)
        return self._loaded[key]

    def all(self, site_dir: Path | None = None) -> dict[str, T]:
        """Every registered object, loaded."""
        return {name: self.get(name, site_dir) for name in self.names(site_dir)}


def builtin_entries(targets: dict[str, str]) -> Callable[[], list[Entry]]:
    """`builtins` for a registry whose built-ins are fixed `module:attr` targets."""
    return lambda: [Entry(name, target, BUILTIN) for name, target in targets.items()]
