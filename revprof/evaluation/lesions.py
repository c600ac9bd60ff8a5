"""Lesion-wise Dice and HD95, as the BraTS 2023+ challenges rank segmentations.

A region mask (WT, TC or ET) is split into lesions (connected components, 26-connectivity) on
both sides; reference and predicted lesions are matched; every matched pair is scored with Dice
and HD95, and every unmatched lesion on either side is scored Dice 0 and HD95 = the penalty.
The case's lesion-wise score of a region is the mean over all those lesions:

    lesion Dice = sum(Dice of matched pairs) / (TP + FN + FP)
    lesion HD95 = (sum(HD95 of matched pairs) + penalty * (FN + FP)) / (TP + FN + FP)

and 1.0 / 0.0 when neither side has a lesion. Two sets of rules decide what a lesion is and
which lesions match:

- ``official`` (default): the current official tool (``brats-evaluation``, built on panoptica):
  26-connected components of each side, one-to-one matching that maximises the total Dice over
  overlapping pairs (Hungarian assignment), no minimum size, penalty 373.13. Its per-case output
  also gives the mean Dice and HD95 over the matched pairs only (its ``sq_dsc``/``sq_hd95``):
  :attr:`LesionScores.matched_dice` and :attr:`LesionScores.matched_hd95`.
- ``brats2023``: the 2023 reference script (``rachitsaluja/BraTS-2023-Metrics``): reference
  lesions within the dilation distance of each other (``dilation`` iterations of the
  18-connected structuring element) count as one lesion; every predicted component that touches
  a reference lesion's dilated extent belongs to it (many-to-one), reference lesions whose volume
  is at most ``min_volume`` mm³ are left out of the score and the counts, and each predicted
  component touching no reference lesion is a false positive; penalty 374. The per-challenge
  dilation and minimum volume are :data:`CHALLENGES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from revprof.errors import RevprofError, look_up
from revprof.evaluation.hausdorff import HD95_EMPTY_PENALTY, hd95

__all__ = [
    "CHALLENGES",
    "ChallengeName",
    "LESION_STYLES",
    "LesionStyle",
    "LEGACY_2023_PENALTY",
    "LesionMatch",
    "LesionRules",
    "LesionScores",
    "lesion_rules",
    "lesion_scores",
]

LEGACY_2023_PENALTY = 374.0
"""HD95 penalty of the 2023 lesion-wise reference script."""

LesionStyle = Literal["official", "brats2023"]
LESION_STYLES: tuple[LesionStyle, ...] = get_args(LesionStyle)
"""Lesion rules: the current official tool's, or the 2023 reference script's."""


@dataclass(frozen=True)
class Challenge:
    """The 2023 reference script's settings for one challenge.

    Attributes:
        name: ``GLI``, ``MET``, ``MEN``, ``PED`` or ``SSA``.
        dilation: iterations of reference dilation before grouping and matching.
        min_volume: reference lesions of at most this volume (mm³) are not scored.
    """

    name: str
    dilation: int
    min_volume: float


ChallengeName = Literal["GLI", "SSA", "MEN", "PED", "MET"]
"""The BraTS 2023 challenges the lesion-wise script knows (see :data:`CHALLENGES`)."""

CHALLENGES: dict[ChallengeName, Challenge] = {
    "GLI": Challenge("GLI", dilation=3, min_volume=50.0),
    "SSA": Challenge("SSA", dilation=3, min_volume=50.0),
    "MEN": Challenge("MEN", dilation=1, min_volume=50.0),
    "PED": Challenge("PED", dilation=3, min_volume=50.0),
    "MET": Challenge("MET", dilation=1, min_volume=2.0),
}
"""Per-challenge settings of the 2023 lesion-wise script (its ``get_LesionWiseResults``)."""


@dataclass(frozen=True)
class LesionRules:
    """What a lesion is, how lesions match and what a miss costs.

    Attributes:
        style: ``official`` or ``brats2023`` (see the module docstring).
        dilation: reference dilation iterations (``brats2023`` only).
        min_volume: smallest scored reference lesion, exclusive, in mm³ (``brats2023`` only).
        penalty: HD95 of an unmatched lesion (and of a region present on one side only).
        challenge: the challenge the settings come from, or None.
    """

    style: str = "official"
    dilation: int = 0
    min_volume: float = 0.0
    penalty: float = HD95_EMPTY_PENALTY
    challenge: str | None = None


def lesion_rules(style: LesionStyle = "official", challenge: ChallengeName | str | None = None,
                 penalty: float | None = None) -> LesionRules:
    """Rules for ``style`` and ``challenge``.

    Args:
        style: ``official`` (default) or ``brats2023``.
        challenge: ``GLI``, ``MET``, ``MEN``, ``PED``, ``SSA`` (case-insensitive); sets the 2023
            dilation and minimum volume (``brats2023``; the official rules are the same for
            every challenge). Default for ``brats2023``: ``GLI``.
        penalty: HD95 penalty; default 373.13 (``official``) or 374 (``brats2023``).

    Raises:
        RevprofError: unknown style or challenge, or a penalty that is not a positive number.
    """
    style = look_up("lesion rules", style, LESION_STYLES)
    name = None
    if challenge is not None:
        name = look_up("challenge", challenge.upper(), get_args(ChallengeName))
    if penalty is not None and not (np.isfinite(penalty) and penalty > 0):
        raise RevprofError(f"--empty-penalty must be a positive number; got {penalty}")
    if style == "official":
        return LesionRules("official", penalty=HD95_EMPTY_PENALTY if penalty is None else float(penalty),
                           challenge=name)
    chosen = CHALLENGES[name or "GLI"]
    return LesionRules("brats2023", dilation=chosen.dilation, min_volume=chosen.min_volume,
                       penalty=LEGACY_2023_PENALTY if penalty is None else float(penalty),
                       challenge=chosen.name)


@dataclass(frozen=True)
class LesionMatch:
    """One scored lesion: a matched pair, a missed reference lesion or a false positive.

    Attributes:
        ref_voxels: voxels of the reference lesion (0 for a false positive).
        pred_voxels: voxels of the predicted lesion(s) (0 for a missed lesion).
        dice: Dice of the pair (0 when unmatched).
        hd95: HD95 of the pair (the penalty when unmatched).
    """

    ref_voxels: int
    pred_voxels: int
    dice: float
    hd95: float

    @property
    def kind(self) -> str:
        """``tp``, ``fn`` or ``fp``."""
        return "tp" if self.ref_voxels and self.pred_voxels else ("fn" if self.ref_voxels else "fp")


@dataclass(frozen=True)
class LesionScores:
    """Lesion-wise scores of one region of one case.

    Attributes:
        tp, fp, fn: matched, false-positive and missed lesions.
        dice: lesion-wise Dice (penalised mean over all lesions).
        hd95: lesion-wise HD95 (penalised mean over all lesions).
        matched_dice: mean Dice over the matched pairs only (NaN without any).
        matched_hd95: mean HD95 over the matched pairs only (NaN without any).
        lesions: every scored lesion, matched pairs first (in reference-lesion order).
    """

    tp: int
    fp: int
    fn: int
    dice: float
    hd95: float
    matched_dice: float
    matched_hd95: float
    lesions: tuple[LesionMatch, ...]

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (NaN becomes ``None``)."""
        def num(v: float) -> float | None:
            return None if not np.isfinite(v) else float(v)

        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "dice": num(self.dice),
                "hd95": num(self.hd95), "matched_dice": num(self.matched_dice),
                "matched_hd95": num(self.matched_hd95)}


_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    labelled, count = ndimage.label(mask, structure=_CONNECTIVITY_26)
    return labelled, int(count)


def _box(slices: Sequence[slice | None], shape: tuple[int, ...], margin: int) -> tuple[slice, ...]:
    """The union of bounding boxes, grown by ``margin`` voxels and clipped to the image."""
    boxes: list[Any] = [s for s in slices if s is not None]  # find_objects' tuples of slices
    return tuple(
        slice(max(min(b[axis].start for b in boxes) - margin, 0),
              min(max(b[axis].stop for b in boxes) + margin, shape[axis]))
        for axis in range(len(shape))
    )


def _score(matches: list[LesionMatch], penalty: float) -> LesionScores:
    tp = sum(1 for m in matches if m.kind == "tp")
    fp = sum(1 for m in matches if m.kind == "fp")
    fn = sum(1 for m in matches if m.kind == "fn")
    matched = [m for m in matches if m.kind == "tp"]
    total = tp + fp + fn
    if total == 0:
        dice, hd = 1.0, 0.0
    else:
        dice = sum(m.dice for m in matched) / total
        hd = (sum(m.hd95 for m in matched) + penalty * (fp + fn)) / total
    matched_dice = float(np.mean([m.dice for m in matched])) if matched else float("nan")
    matched_hd = float(np.mean([m.hd95 for m in matched])) if matched else float("nan")
    return LesionScores(tp=tp, fp=fp, fn=fn, dice=float(dice), hd95=float(hd),
                        matched_dice=matched_dice, matched_hd95=matched_hd, lesions=tuple(matches))


def lesion_scores(pred: np.ndarray, ref: np.ndarray, rules: LesionRules = LesionRules(),
                  hd95_spacing: Sequence[float] | None = None,
                  spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> LesionScores:
    """Lesion-wise scores of one region.

    Args:
        pred: boolean predicted region mask ``(D, H, W)``.
        ref: boolean reference region mask, same shape.
        rules: :func:`lesion_rules`.
        hd95_spacing: spacing the per-lesion HD95 is measured with (mm per voxel along D, H, W;
            ``None`` for voxel units).
        spacing: the voxel size in mm (for the 2023 rules' minimum lesion volume).

    Returns:
        :class:`LesionScores`.

    Raises:
        RevprofError: the shapes differ.
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise RevprofError(f"prediction shape {pred.shape} does not match reference shape {ref.shape}")
    margin = rules.dilation + 1 if rules.style == "brats2023" else 1
    box = _union_box(pred | ref, margin)
    if box is None:  # nothing on either side
        return _score([], rules.penalty)
    # Lesions, matches and surface distances do not change inside a box holding every foreground
    # voxel plus a margin (image borders stay where they are: the box is clipped, not padded).
    pred, ref = np.ascontiguousarray(pred[box]), np.ascontiguousarray(ref[box])
    if rules.style == "official":
        return _official(pred, ref, rules, hd95_spacing)
    return _brats2023(pred, ref, rules, hd95_spacing, spacing)


def _union_box(mask: np.ndarray, margin: int) -> tuple[slice, ...] | None:
    """Bounding box of ``mask`` grown by ``margin`` and clipped to the image; None when empty."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return None
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(box)


def _official(pred: np.ndarray, ref: np.ndarray, rules: LesionRules,
              hd95_spacing: Sequence[float] | None) -> LesionScores:
    ref_cc, n_ref = _label(ref)
    pred_cc, n_pred = _label(pred)
    ref_sizes = np.bincount(ref_cc.ravel(), minlength=n_ref + 1)[1:]
    pred_sizes = np.bincount(pred_cc.ravel(), minlength=n_pred + 1)[1:]
    matches: list[LesionMatch] = []
    pairs: list[tuple[int, int]] = []
    if n_ref and n_pred:
        both = (ref_cc > 0) & (pred_cc > 0)
        index = ref_cc[both].astype(np.int64) * (n_pred + 1) + pred_cc[both]
        overlap = np.bincount(index, minlength=(n_ref + 1) * (n_pred + 1)).reshape(n_ref + 1, n_pred + 1)[1:, 1:]
        dice = 2.0 * overlap / (ref_sizes[:, None] + pred_sizes[None, :])
        rows, cols = linear_sum_assignment(dice, maximize=True)
        pairs = sorted((int(r), int(c)) for r, c in zip(rows, cols) if overlap[r, c] > 0)
        ref_boxes, pred_boxes = ndimage.find_objects(ref_cc), ndimage.find_objects(pred_cc)
        for r, c in pairs:
            box = _box([ref_boxes[r], pred_boxes[c]], ref.shape, margin=1)
            hd = hd95(pred_cc[box] == c + 1, ref_cc[box] == r + 1, hd95_spacing, penalty=rules.penalty)
            matches.append(LesionMatch(int(ref_sizes[r]), int(pred_sizes[c]), float(dice[r, c]), hd))
    matched_ref = {r for r, _ in pairs}
    matched_pred = {c for _, c in pairs}
    matches += [LesionMatch(int(ref_sizes[r]), 0, 0.0, rules.penalty)
                for r in range(n_ref) if r not in matched_ref]
    matches += [LesionMatch(0, int(pred_sizes[c]), 0.0, rules.penalty)
                for c in range(n_pred) if c not in matched_pred]
    return _score(matches, rules.penalty)


_DILATION = ndimage.generate_binary_structure(3, 2)


def _brats2023(pred: np.ndarray, ref: np.ndarray, rules: LesionRules,
               hd95_spacing: Sequence[float] | None, spacing: Sequence[float]) -> LesionScores:
    voxel_volume = float(np.prod([float(s) for s in spacing]))
    d = rules.dilation
    if d > 0:
        grouped, n_ref = _label(ndimage.binary_dilation(ref, structure=_DILATION, iterations=d))
        lesions = np.where(ref, grouped, 0)
    else:
        lesions, n_ref = _label(ref)
    pred_cc, n_pred = _label(pred)
    pred_sizes = np.bincount(pred_cc.ravel(), minlength=n_pred + 1)
    ref_boxes, pred_boxes = ndimage.find_objects(lesions, max_label=n_ref), ndimage.find_objects(pred_cc)
    touched: set[int] = set()
    matches: list[LesionMatch] = []
    for k in range(1, n_ref + 1):
        if ref_boxes[k - 1] is None:
            continue
        near = _box([ref_boxes[k - 1]], ref.shape, margin=d + 1)
        lesion_near = lesions[near] == k
        extent = ndimage.binary_dilation(lesion_near, structure=_DILATION, iterations=d) if d else lesion_near
        hit = [int(v) for v in np.unique(pred_cc[near][extent]) if v != 0]
        touched.update(hit)
        size = int(np.count_nonzero(lesion_near))
        if size * voxel_volume <= rules.min_volume:
            continue  # too small to score (its predicted neighbours are still not false positives)
        if not hit:
            matches.append(LesionMatch(size, 0, 0.0, rules.penalty))
            continue
        box = _box([ref_boxes[k - 1], *(pred_boxes[v - 1] for v in hit)], ref.shape, margin=1)
        pred_mask = np.isin(pred_cc[box], hit)
        ref_mask = lesions[box] == k
        n_pred_voxels = int(sum(pred_sizes[v] for v in hit))
        dice = 2.0 * np.count_nonzero(pred_mask & ref_mask) / (n_pred_voxels + size)
        hd = hd95(pred_mask, ref_mask, hd95_spacing, penalty=rules.penalty)
        matches.append(LesionMatch(size, n_pred_voxels, float(dice), hd))
    matches += [LesionMatch(0, int(pred_sizes[v]), 0.0, rules.penalty)
                for v in range(1, n_pred + 1) if v not in touched]
    return _score(matches, rules.penalty)

