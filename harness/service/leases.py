"""Claimed runs as leases: the evaluator's heartbeat, SIGTERM handled like Ctrl-C, and the operator's view.

An evaluator claims each run under its own `Lease` (`harness.store.repo`) and renews all of its claims from a
heartbeat thread every quarter of the lease (`HARNESS_RUN_LEASE_S`). While it lives, nobody else takes its runs;
once it is gone (killed, even by SIGKILL, or hung) its leases run out and the next `evaluate` takes each run
over as a new attempt, in a fresh output folder. The lease is longer than it takes the runners to stop an
orphaned ingestion step (the leash's parent-death signal, a container's removal), so a run is never taken over
while its previous attempt can still write. `harness runs stuck` lists running runs with their leases;
`harness runs release RUN` gives one up so that the next `evaluate` runs it again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from harness.errors import HarnessError


class Heartbeat:
    """Renews every claim of a lease while the evaluation runs (a daemon thread: it dies with the process)."""

    def __init__(self, store: Any, lease: Any):
        self.store = store
        self.lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="harness-lease-heartbeat", daemon=True)

    def _beat(self) -> None:
        interval = max(0.1, self.lease.seconds / 4)
        while not self._stop.wait(interval):
            try:
                self.store.renew_leases(self.lease)
            except Exception:  # noqa: BLE001  a busy store: the next beat tries again, well within the lease
                pass

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class Terminated(SystemExit):
    """SIGTERM arrived: unwinds like Ctrl-C (claims released, the ingestion step killed), then exits 143."""


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` in the main thread (once: clean-up is not interrupted twice)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def terminate(signum: int, _frame: Any) -> None:
        nonlocal fired
        if fired:
            return
        fired = True
        os.write(2, b"harness: SIGTERM: stopping; the runs this evaluator claimed go back to the queue\n")
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sigterm_drains(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM only sets `stop`: a watching evaluator finishes the run it is on, claims no other,
    and stops (`harness evaluate --watch`). A second SIGTERM unwinds at once, as `sigterm_unwinds`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def drain(signum: int, _frame: Any) -> None:
        if stop.is_set():
            os.write(2, b"harness: SIGTERM again: stopping now; claimed runs go back to the queue\n")
            raise Terminated(128 + signum)
        stop.set()
        os.write(2, b"harness: SIGTERM: stopping after the current run\n")

    previous = signal.signal(signal.SIGTERM, drain)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def holder_reason(holder: Any, now: Any = None) -> str:
    """Why a planned run is skipped: it is finished, or another evaluator's lease on it is live."""
    from harness.store.models import utcnow

    if holder.status != "running":
        return "already evaluated"
    left = (holder.lease_expires_at - (now or utcnow())).total_seconds()
    return (
        f"being evaluated as run {holder.id} by another evaluator "
        f"({holder.host}, pid {holder.pid}, attempt {holder.attempt}); its lease runs {left:.0f} s more unless "
        f"renewed - if that evaluator is gone, wait, or `harness runs release {holder.id} --force`"
    )


def stuck_runs(store: Any) -> list[dict[str, Any]]:
    """Every running run with its lease: who holds it, its last heartbeat, when it expires, whether it is live."""
    from harness.store.models import utcnow
    from harness.store.repo import lease_is_live

    now = utcnow()
    rows = []
    for run in store.runs(status="running"):
        expires = run.lease_expires_at
        rows.append(
            {
                "run_id": run.id,
                "submission": run.submission.name,
                "variant": run.variant,
                "track": run.track,
                "attempt": run.attempt,
                "owner": run.lease_owner,
                "host": run.host,
                "pid": run.pid,
                "started_at": run.started_at.isoformat() + "Z",
                "heartbeat_at": run.heartbeat_at.isoformat() + "Z" if run.heartbeat_at else None,
                "lease_expires_at": expires.isoformat() + "Z" if expires else None,
                "expires_in_s": round((expires - now).total_seconds(), 1) if expires else None,
                "lease": "live" if lease_is_live(run, now) else "expired",
            }
        )
    return rows


def release(store: Any, run_id: int, reason: str, force: bool = False) -> dict[str, Any]:
    """Give up a stuck run (`Store.release_stuck`); a user error when it is not running or its lease is live."""
    from harness.store.repo import lease_is_live

    run = store.get_run(run_id)
    if run is None:
        raise HarnessError(f"no run with id {run_id}", "`harness runs stuck` lists the running runs")
    if run.status != "running":
        raise HarnessError(
            f"run {run_id} is {run.status}, not running: there is nothing to release",
            "to evaluate it again, use `harness evaluate --force`",
        )
    if not force and lease_is_live(run):
        raise HarnessError(
            f"run {run_id} is held by a live lease (evaluator on {run.host}, pid {run.pid}, last heartbeat "
            f"{run.heartbeat_at:%H:%M:%S} UTC): its evaluator may still be running it",
            f"wait for the lease to expire ({run.lease_expires_at:%H:%M:%S} UTC), or pass --force if that "
            "evaluator is surely gone (its result would then be discarded)",
        )
    if not store.release_stuck(run_id, reason, force=force):
        raise HarnessError(f"run {run_id} changed while it was released (finished, or taken over): try again")
    return {"run_id": run_id, "status": "released", "reason": reason, "forced": force}
