"""The reference network: the trial the depth, patch, breakdown and timeline panels are about."""

from __future__ import annotations

import math
from collections.abc import Sequence

from revprof.errors import RevprofError
from revprof.report.inputs import TrialRow
from revprof.report.panels.common import is_feasible
from revprof.spec import ArchSpec


def reference_trial(trials: Sequence[TrialRow], budget: int | None, number: int | None = None
                    ) -> TrialRow | None:
    """The network the memory figures are about.

    ``number`` when given; else the feasible trial with the best mean Dice; else (no Dice) the
    first feasible trial; else the first trial. Only trials with a spec and a patch qualify, and
    of those the revunet ones when there are any (the memory-vs-depth figure needs one).
    """
    usable = [t for t in trials if t.spec is not None and t.patch is not None]
    if number is not None:
        for t in usable:
            if t.number == number:
                return t
        raise RevprofError(f"--reference {number}: no trial with that number has a spec and a patch"
                           f" (numbers: {', '.join(str(t.number) for t in usable) or 'none'})")
    if not usable:
        return None
    reversible = [t for t in usable if t.spec.arch == "revunet"]  # type: ignore[union-attr]
    usable = reversible or usable
    feasible = [t for t in usable if is_feasible(t, budget)]
    with_dice = [t for t in feasible if t.dice is not None and not math.isnan(t.dice.mean)]
    if with_dice:
        return max(with_dice, key=lambda t: (t.dice.mean, -t.number))  # type: ignore[union-attr]
    return min(feasible or usable, key=lambda t: t.number)


def same_network(a: ArchSpec, b: ArchSpec) -> bool:
    """The same network, whatever its execution (revunet) or exactly (others)."""
    return a == b or (a.arch == b.arch == "revunet" and a.with_execution("reversible")
                      == b.with_execution("reversible"))
