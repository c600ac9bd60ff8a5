"""Dice per region of the Pareto-front trials."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from revprof.report.inputs import TrialRow


class DiceInfo(NamedTuple):
    """Dice per region of the Pareto-front trials (in order of peak memory)."""

    labels: tuple[str, ...]
    words: tuple[str, ...]
    wt: tuple[float, ...]
    tc: tuple[float, ...]
    et: tuple[float, ...]
    mean: tuple[float, ...]


def dice_info(front: Sequence[TrialRow]) -> DiceInfo | None:
    """The trials of ``front`` that have Dice, in order of peak memory (``None``: none has)."""
    members = sorted((t for t in front if t.dice is not None),
                     key=lambda t: (t.memory_bytes, t.number))
    if not members:
        return None
    return DiceInfo(tuple(t.label for t in members), tuple(t.spec_words for t in members),
                    tuple(t.dice.wt for t in members), tuple(t.dice.tc for t in members),  # type: ignore[union-attr]
                    tuple(t.dice.et for t in members), tuple(t.dice.mean for t in members))  # type: ignore[union-attr]
