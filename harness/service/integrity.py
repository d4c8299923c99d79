"""The host's checks that a run's latency is the cost of producing its predictions.

The sandbox times fresh inputs and cross-checks the timed outputs (harness.sandbox.timed); two checks remain
for the host, which knows the track and the machine:

- Work outside the timed step. A track that ranks the forward step alone (`ranked_latency = "device"`) bounds the
  share of the model's MACs computed in preprocess and postprocess (`max_outside_forward`; the MAC tracer knows
  which step each operator ran in, and an honest pre- or postprocess computes none): a predictor that moves its
  network out of `forward` fails with the share. A time bound would not do: on a GPU, an honest preprocess on
  the CPU often takes longer than the forward. A track that ranks end to end (`ranked_latency = "e2e"`) needs no
  bound: all the work is timed.
- Plausibility. MACs are counted over the whole `predict`; no latency may imply more MACs per second than the
  hardware class delivers in the variant's precision (its peak, measured once by harness.measure.peak and
  stored), by `MARGIN`. This bounds what any forgery of the timers from inside the sandbox can gain.
"""

from __future__ import annotations

from typing import Any

from harness.tracks import TrackCard

MARGIN = 1.5  # a peak measured on a busy machine may be low; an implausible latency is far beyond it
PENDING_SHARE = 0.1  # GPU work left running after the timed calls may be at most this share of the timed time
PENDING_FLOOR_S = 0.05  # ... plus this much (the untimed device waits themselves)


def hardware_peak(store: Any, runner: Any, hardware_class: str, device: str, threads: int) -> dict[str, Any]:
    """The stored peak of a hardware class, measured (by the runner, on the machine that runs its jobs) the first
    time it is needed; a copy kept in `HARNESS_HOME/peaks/` serves other stores on the same machine."""
    import hashlib
    import json

    from harness.config import settings
    from harness.fs import write_atomic

    peak = store.hardware_peak(hardware_class)
    if peak is not None:
        return peak
    kept = settings().home / "peaks" / (hashlib.sha256(hardware_class.encode()).hexdigest()[:24] + ".json")
    try:
        measured = json.loads(kept.read_text())
        float(measured["macs_per_s"])
    except (OSError, ValueError, KeyError, TypeError):
        measured = runner.peak(device, threads)
        write_atomic(kept, json.dumps({**measured, "hardware_class": hardware_class}))
    return store.record_hardware_peak(hardware_class, device, {**measured, "hardware_class": hardware_class})


def latency_problem(card: TrackCard, measured: Any, peak: dict[str, Any] | None) -> str | None:
    """Why a verified run's latency cannot be ranked, or None."""
    from harness.measure.peak import ceiling
    from harness.service.jobs import macs_key

    share = float((measured.info.get("macs_outside_forward") or {}).get("share") or 0.0)
    if card.ranked_latency == "device" and card.max_outside_forward is not None and share > card.max_outside_forward:
        return (
            f"[latency] {share:.0%} of the model's MACs are computed in preprocess or postprocess; this track ranks "
            f"the forward step alone and allows at most {card.max_outside_forward:.0%} outside it: move the "
            "model's work into `forward`"
        )
    for kind, summary in (measured.latency or {}).items():
        timed_s = sum(summary.get("samples_ms") or []) / 1000.0
        pending = float(summary.get("pending_s") or 0.0)
        if pending > PENDING_SHARE * timed_s + PENDING_FLOOR_S:
            return (
                f"[latency] the timed {kind} calls left work running on the GPU that the timer did not see "
                f"({pending:.3f} s waited for after them, against {timed_s:.3f} s timed): finish the work on the "
                "stream `forward` is called on, or wait for it before returning"
            )
    macs = measured.complexity.macs.get(macs_key(card))
    if not macs or not peak or not measured.latency:
        return None
    reduced = bool((measured.crosscheck or {}).get("reduced_precision"))
    limit = ceiling(peak, reduced)
    for kind, summary in measured.latency.items():
        seconds = float(summary["ranked_ms"]) / 1000.0
        if seconds <= 0:
            return f"[implausible] the {kind} latency is {summary['ranked_ms']} ms"
        rate = macs * int(summary.get("batch_size") or 1) / seconds
        if rate > MARGIN * limit:
            precision = "any dtype" if reduced else "float32"
            return (
                f"[implausible] the {kind} latency of {summary['ranked_ms']:.4f} ms for {macs / 1e6:,.1f} M MACs per "
                f"image implies {rate / 1e9:,.1f} G MACs/s, beyond what this hardware class delivers "
                f"({limit / 1e9:,.1f} G MACs/s in {precision}, measured): the timed step did not do the model's work"
            )
    return None
