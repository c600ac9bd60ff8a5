"""Where the panels' peaks, breakdowns and timelines come from: the trials, else simulation.

One :class:`Memory` belongs to one :func:`~revprof.report.prepare.prepare` call and keeps the
simulations it made, so each configuration is simulated at most once per report and two reports
in one process share nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from revprof.memory import CATEGORIES, MemoryReport, measure_memory
from revprof.recipe import Recipe
from revprof.report.inputs import TrialRow
from revprof.spec import ArchSpec

Key = tuple[ArchSpec, tuple[int, int, int], Recipe]
"""A configuration: network, patch ``(D, H, W)``, and the recipe it trains with (its batch and
precision among the rest)."""

Simulator = Callable[[ArchSpec, tuple[int, int, int], Recipe], MemoryReport]


def simulate(spec: ArchSpec, patch: tuple[int, int, int], recipe: Recipe) -> MemoryReport:
    """``measure_memory`` with the simulate backend (exact and cheap: about 2 s for the paper's
    network)."""
    return measure_memory(spec, patch, recipe, backend="simulate")


class Memory:
    """Peaks, breakdowns and timelines of configurations: from a trial that measured exactly
    that configuration when there is one, else simulated (once per configuration; the reports
    are kept for the life of this object).

    Args:
        trials: trials whose predicted peak (and breakdown) may be reused.
        simulator: the function that simulates (replaceable in tests).

    Attributes:
        simulated: the configurations simulated so far, in order, each once (one simulator call
            each).
    """

    def __init__(self, trials: Sequence[TrialRow], simulator: Simulator | None = None) -> None:
        self.known: dict[Key, TrialRow] = {}
        for t in trials:
            if t.spec and t.patch and t.predicted_peak_bytes is not None:
                self.known.setdefault((t.spec, t.patch, t.recipe), t)
        self.simulator = simulator or simulate
        self.simulated: list[Key] = []
        self._reports: dict[Key, MemoryReport] = {}

    def _has_breakdown(self, key: Key) -> bool:
        trial = self.known.get(key)
        return bool(trial is not None and trial.breakdown and trial.activations_by_part is not None)

    def report(self, key: Key) -> MemoryReport:
        """The simulated report of ``key`` (simulated on first use)."""
        if key not in self._reports:
            self._reports[key] = self.simulator(*key)
            self.simulated.append(key)
        return self._reports[key]

    def peak(self, key: Key) -> int:
        """The peak bytes of ``key``: a trial's predicted peak, else simulated."""
        trial = self.known.get(key)
        if trial is not None:
            return int(trial.predicted_peak_bytes)  # type: ignore[arg-type]
        return self.report(key).peak_bytes

    def breakdown(self, key: Key) -> tuple[tuple[int, ...], Mapping[str, int]]:
        """Bytes per category at the peak, and saved activations per part at the end of forward."""
        if self._has_breakdown(key):
            trial = self.known[key]
            return (tuple(int(trial.breakdown.get(c, 0)) for c in CATEGORIES),  # type: ignore[union-attr]
                    trial.activations_by_part)  # type: ignore[return-value]
        report = self.report(key)
        return tuple(report.breakdown.get(c, 0) for c in CATEGORIES), report.saved_after_forward
