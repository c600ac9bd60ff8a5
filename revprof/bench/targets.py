"""The targets of the reversible execution, evaluated on one benchmark run.

Every target is a ratio with a limit; it passes when the worst measured ratio is at or below the
limit. Memory targets read the main table (the paper's revunet at 128³ by default), time targets
the CPU step-time medians.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from revprof.bench.memory import PeakRow
from revprof.bench.timing import TimingResult

TARGET_PATCH = (128, 128, 128)


@dataclass
class TargetResult:
    """One target: its limit, the measured ratios (``detail`` per depth or pair) and the verdict.

    ``ratio`` is the worst (largest) measured ratio, ``None`` when the peers it needs were not
    measured; then ``passed`` is ``None`` too.
    """

    key: str
    description: str
    limit: float
    ratio: float | None
    passed: bool | None
    detail: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetResult:
        return cls(**data)


def _result(key: str, description: str, limit: float, detail: dict[str, float]) -> TargetResult:
    if not detail:
        return TargetResult(key, description, limit, None, None, {})
    worst = max(detail.values())
    return TargetResult(key, description, limit, worst, worst <= limit, detail)


def _peaks(rows: Sequence[PeakRow], patch: Sequence[int], table: str = "paper") -> dict[tuple[str, int], PeakRow]:
    return {(r.peer, r.depth): r for r in rows
            if r.table == table and list(r.patch) == list(patch) and r.peak_bytes > 0}


def peak_ratio(rows: Sequence[PeakRow], peer: str, reference: str, depths: Sequence[int],
               patch: Sequence[int] = TARGET_PATCH) -> dict[str, float]:
    """``peak(peer) / peak(reference)`` per depth, where both were measured."""
    peaks = _peaks(rows, patch)
    return {f"depth {d}": peaks[(peer, d)].peak_bytes / peaks[(reference, d)].peak_bytes
            for d in depths if (peer, d) in peaks and (reference, d) in peaks}


def depth_growth(rows: Sequence[PeakRow], peer: str = "reversible", patch: Sequence[int] = TARGET_PATCH,
                 table: str = "paper") -> dict[str, float]:
    """Per added block per level: ``Δ peak / Δ (parameter + gradient + Adam-state bytes)``
    between consecutive measured depths."""
    peaks = _peaks(rows, patch, table)
    depths = sorted(d for (p, d) in peaks if p == peer)
    growth = {}
    for shallow, deep in zip(depths, depths[1:]):
        a, b = peaks[(peer, shallow)], peaks[(peer, deep)]
        state = b.state_bytes - a.state_bytes
        if state > 0:
            growth[f"depth {shallow}→{deep}"] = (b.peak_bytes - a.peak_bytes) / state
    return growth


def evaluate(rows: Sequence[PeakRow], timing: TimingResult | None,
             patch: Sequence[int] = TARGET_PATCH, depths: Sequence[int] = (1, 2, 3, 4)) -> list[TargetResult]:
    """Every target of the issue on one run's rows and timing."""
    where = "×".join(map(str, patch))
    timing_ratios = timing.ratio_vs_plain if timing else {}
    timing_revtorch = timing.ratio_vs_revtorch if timing else {}
    plain_ratio, revtorch_ratio = timing_ratios.get("reversible"), timing_revtorch.get("reversible")
    results = [
        _result("memory_vs_revtorch", f"reversible peak ≤ 0.80 × RevTorch's (same network, {where}, "
                f"every depth {min(depths)}–{max(depths)})", 0.80,
                peak_ratio(rows, "reversible", "revtorch", depths, patch)),
        _result("memory_vs_checkpoint", f"reversible peak ≤ 0.75 × checkpointed peak ({where}, "
                f"every depth {min(depths)}–{max(depths)})", 0.75,
                peak_ratio(rows, "reversible", "checkpoint", depths, patch)),
        _result("memory_vs_plain", f"reversible peak ≤ 0.50 × plain peak ({where}, 1 block per level)",
                0.50, peak_ratio(rows, "reversible", "plain", [1], patch)),
        _result("depth_growth", "memory added per extra block per level ≤ 1.05 × the parameter + "
                f"gradient + Adam-state bytes of the added blocks ({where})", 1.05,
                depth_growth(rows, "reversible", patch)),
        _result("time_vs_plain", "step time (CPU, small network): reversible ≤ 1.35 × plain", 1.35,
                {"median ratio": plain_ratio} if plain_ratio is not None else {}),
        _result("time_vs_revtorch", "step time (CPU, small network): reversible ≤ 1.0 × RevTorch", 1.0,
                {"median ratio": revtorch_ratio} if revtorch_ratio is not None else {}),
    ]
    return results
