"""The pieces a stage is split into for executors that run steps at once: ``<stage>_0`` …
``<stage>_f``, one per hex digit (of the media id for fingerprints, of the content hash for AI
analysis; ``stages.fingerprint.SHARDS``). The stage's own asset follows its pieces and reports
the run's totals from their materializations."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from media_pipeline.stages.fingerprint import SHARDS

__all__ = ["SHARDS", "STAGES", "is_piece", "piece_key", "run_totals"]

STAGES = ("fingerprints", "ai_analysis")


def piece_key(stage: str, digit: str) -> dg.AssetKey:
    return dg.AssetKey(f"{stage}_{digit}")


def is_piece(key: dg.AssetKey) -> bool:
    stage, _, digit = key.to_user_string().rpartition("_")
    return stage in STAGES and len(digit) == 1 and digit in SHARDS


def run_totals(context: dg.AssetExecutionContext, stage: str,
               names: Sequence[str]) -> dict[str, int]:
    """The sums of ``names`` over what this run's pieces of ``stage`` reported, read from the
    run's own events (so on any executor and any machine)."""
    totals = dict.fromkeys(names, 0)
    keys = [piece_key(stage, digit) for digit in SHARDS]
    selected = context.run.asset_selection
    if selected and selected.isdisjoint(keys):
        return totals  # a run of the stage alone (in one process): it did all the work itself
    for event in context.instance.get_latest_materialization_events(keys).values():
        if event is None or event.run_id != context.run.run_id:
            continue
        materialization = event.asset_materialization
        for name in names:
            value = materialization.metadata.get(name) if materialization else None
            totals[name] += int(getattr(value, "value", 0) or 0)
    return totals
