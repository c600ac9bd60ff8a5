"""Score a folder of predicted segmentations against a folder of references, BraTS style.

For every paired case (see :mod:`revprof.evaluation.pairing`) and every region (WT, TC, ET of the
label convention): Dice (:mod:`revprof.evaluation.dice`) and HD95 in mm using the reference's voxel
spacing (:mod:`revprof.evaluation.hausdorff`). The mean per region is over the scored cases.

Cases that cannot be scored (unreadable file, prediction shape differing from the reference) are
reported in :attr:`EvaluationResult.problems` and left out of the means; they never stop the run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from revprof.data.conventions import CONVENTIONS, REGIONS, LabelConvention, get_convention
from revprof.errors import RevprofError
from revprof.evaluation.dice import dice_score
from revprof.evaluation.hausdorff import hd95 as hd95_distance
from revprof.evaluation.io import Segmentation, load_segmentation
from revprof.evaluation.pairing import CasePair, pair_files

__all__ = [
    "CaseResult",
    "EvaluationResult",
    "ProgressCallback",
    "detect_convention",
    "evaluate",
    "present_labels",
    "score_case",
]

ProgressCallback = Callable[[int, int, str], None]
"""Called after each case with ``(cases done, cases in all, case id)``."""

_OLD_NAME = re.compile(r"^brats\d{2,4}_", re.IGNORECASE)
_MSD_NAME = re.compile(r"^brats_\d+$", re.IGNORECASE)
_NEW_NAME = re.compile(r"^brats-[a-z]+-\d{5}-\d{3}", re.IGNORECASE)
_CACHE_BYTES = 512 * 1024**2  # references kept from the label scan for the scoring pass


@dataclass(frozen=True)
class CaseResult:
    """Scores of one case.

    Attributes:
        case: case id (the reference's name).
        pred: prediction file.
        ref: reference file.
        dice: Dice per region ``wt``, ``tc``, ``et``.
        hd95: HD95 in mm per region, or ``None`` when not computed.
    """

    case: str
    pred: Path
    ref: Path
    dice: dict[str, float]
    hd95: dict[str, float] | None


@dataclass(frozen=True)
class EvaluationResult:
    """Everything :func:`evaluate` found.

    Attributes:
        convention: name of the label convention used.
        cases: scored cases, sorted by case id.
        unpaired: files (as strings) with no counterpart on the other side, predictions first.
        problems: one human-readable line each: cases not scored and why, label warnings,
            an ambiguous convention, duplicate case ids.
    """

    convention: str
    cases: tuple[CaseResult, ...]
    unpaired: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def hd95_computed(self) -> bool:
        """Whether HD95 was computed (false for ``hd95=False`` or when no case was scored)."""
        return bool(self.cases) and all(c.hd95 is not None for c in self.cases)

    def mean(self) -> dict[str, dict[str, float | None]]:
        """Mean Dice and HD95 per region over the scored cases (``None`` when undefined)."""
        dice: dict[str, float | None] = {r: None for r in REGIONS}
        hd: dict[str, float | None] = {r: None for r in REGIONS}
        if self.cases:
            dice = {r: float(np.mean([c.dice[r] for c in self.cases])) for r in REGIONS}
            if self.hd95_computed:
                hd = {r: float(np.mean([c.hd95[r] for c in self.cases])) for r in REGIONS}  # type: ignore[index]
        return {"dice": dice, "hd95": hd}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict.

        Returns:
            ``{"cases": [{"case", "dice": {wt, tc, et}, "hd95": {wt, tc, et}}, ...],
            "mean": {"dice": {...}, "hd95": {...}}, "unpaired": [...]}``; HD95 values are
            ``null`` when not computed.
        """
        none = {r: None for r in REGIONS}
        return {
            "cases": [
                {
                    "case": c.case,
                    "dice": {r: c.dice[r] for r in REGIONS},
                    "hd95": {r: c.hd95[r] for r in REGIONS} if c.hd95 is not None else dict(none),
                }
                for c in self.cases
            ],
            "mean": self.mean(),
            "unpaired": list(self.unpaired),
        }

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per case and region: ``case, region, dice, hd95``."""
        import pandas as pd

        rows = [
            {
                "case": c.case,
                "region": r,
                "dice": c.dice[r],
                "hd95": c.hd95[r] if c.hd95 is not None else float("nan"),
            }
            for c in self.cases
            for r in REGIONS
        ]
        return pd.DataFrame(rows, columns=["case", "region", "dice", "hd95"])


def present_labels(labels: np.ndarray) -> set[int]:
    """The label values present in an integer label map ``(D, H, W)``, without sorting it."""
    if labels.size == 0:
        return set()
    low, high = int(labels.min()), int(labels.max())
    if high - low <= 16:
        return {v for v in range(low, high + 1) if (labels == v).any()}
    return {int(v) for v in np.unique(labels)}


def detect_convention(labels: Iterable[int], names: Sequence[str] = ()) -> tuple[str, str | None]:
    """Pick the label convention from the reference label values, using case names to break ties.

    Rules: labels 3 and 4 → ``brats2024``; 4 without 3 → ``brats2021`` (``brats2024`` for
    BraTS 2023-style names such as ``BraTS-GLI-00001-000``); 3 without 4 → ``brats2023`` (``msd``
    for Decathlon names ``BRATS_001``); only 0–2 → decided by the names (2017–2021 style
    ``BraTS2021_00001`` → ``brats2021``, Decathlon → ``msd``, else ``brats2023``).

    Args:
        labels: every label value present in the references.
        names: the references' case names.

    Returns:
        ``(convention name, note)``; the note explains a guess, else ``None``.

    Raises:
        RevprofError: a label outside 0–4 (no convention defines it).
    """
    present = set(int(v) for v in labels)
    outside = sorted(v for v in present if v < 0 or v > 4)
    if outside:
        raise RevprofError(
            f"reference labels {sorted(present)} fit no known convention (brats2021: 0,1,2,4; "
            "brats2023/msd: 0-3; brats2024: 0-4); pass --convention or fix the references"
        )
    names = list(names)
    old = bool(names) and all(_OLD_NAME.match(n) for n in names)
    msd = bool(names) and all(_MSD_NAME.match(n) for n in names)
    new = bool(names) and all(_NEW_NAME.match(n) for n in names)
    if 3 in present and 4 in present:
        return "brats2024", None
    if 4 in present:
        return ("brats2024" if new else "brats2021"), None
    if 3 in present:
        return ("msd" if msd else "brats2023"), None
    if old:
        return "brats2021", None
    if msd:
        return "msd", None
    if new:
        return "brats2023", None
    return "brats2023", (
        f"reference labels {sorted(present)} fit several conventions; assumed brats2023 "
        "(pass --convention to choose)"
    )


def _region_mask(labels: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    """Boolean ``(D, H, W)`` mask of the voxels whose label is one of ``values``."""
    mask = labels == values[0]
    for value in values[1:]:
        mask |= labels == value
    return mask


def score_case(pred: Segmentation, ref: Segmentation, convention: LabelConvention,
               hd95: bool = True) -> tuple[dict[str, float], dict[str, float] | None]:
    """Dice (and HD95, in mm with the reference's spacing) per region of one case.

    Args:
        pred: predicted label map ``(D, H, W)``.
        ref: reference label map, same shape.
        convention: label convention of both.
        hd95: also compute HD95.

    Returns:
        ``(dice per region, HD95 per region or None)``.

    Raises:
        RevprofError: the shapes differ.
    """
    if pred.labels.shape != ref.labels.shape:
        raise RevprofError(
            f"prediction shape {pred.labels.shape} does not match reference shape "
            f"{ref.labels.shape}"
        )
    dice: dict[str, float] = {}
    hd: dict[str, float] | None = {} if hd95 else None
    for region in REGIONS:
        values = convention.regions[region]
        p = _region_mask(pred.labels, values)
        r = _region_mask(ref.labels, values)
        dice[region] = dice_score(p, r)
        if hd is not None:
            hd[region] = hd95_distance(p, r, ref.spacing)
    return dice, hd


def _check_dir(path: Path | str, option: str) -> Path:
    directory = Path(path)
    if not directory.exists():
        raise RevprofError(f"{option} folder does not exist: {directory}")
    if not directory.is_dir():
        raise RevprofError(f"{option} must be a folder of NIfTI files; got a file: {directory}")
    return directory


def evaluate(pred_dir: Path | str, ref_dir: Path | str, convention: str | None = None,
             hd95: bool = True, progress: ProgressCallback | None = None) -> EvaluationResult:
    """Evaluate every prediction against its reference.

    Args:
        pred_dir: folder of predicted label maps (flat, or case folders), named by case id in any
            of the usual ways.
        ref_dir: folder of reference segmentations (a BraTS dataset folder of case folders, or a
            flat folder of ``*seg.nii.gz``).
        convention: label convention of both sides (``brats2021``, ``brats2023``, ``brats2024``,
            ``msd``); ``None`` detects it from the reference labels and names.
        hd95: also compute HD95 (the slower metric).
        progress: called after each case.

    Returns:
        Per-case scores, means, unpaired files and problems.

    Raises:
        RevprofError: a folder is missing or holds no NIfTI file, no prediction matches any
            reference, or the convention is unknown / cannot be detected.
    """
    preds_at = _check_dir(pred_dir, "--pred")
    refs_at = _check_dir(ref_dir, "--ref")
    chosen = get_convention(convention) if convention is not None else None

    pairing = pair_files(preds_at, refs_at)
    n_preds = len(pairing.pairs) + len(pairing.unpaired_pred)
    n_refs = len(pairing.pairs) + len(pairing.unpaired_ref)
    if n_preds == 0:
        raise RevprofError(f"--pred folder holds no NIfTI files (.nii, .nii.gz): {preds_at}")
    if n_refs == 0:
        raise RevprofError(f"--ref folder holds no NIfTI segmentations (.nii, .nii.gz): {refs_at}")
    if not pairing.pairs:
        raise RevprofError(
            f"no prediction in {preds_at} matches a reference in {refs_at} by case id "
            f"(e.g. prediction {pairing.unpaired_pred[0].name!r}, reference "
            f"{pairing.unpaired_ref[0].name!r})"
        )
    problems: list[str] = list(pairing.problems)
    unpaired = [str(p) for p in pairing.unpaired_pred] + [str(p) for p in pairing.unpaired_ref]

    cache: dict[Path, Segmentation] = {}
    if chosen is None:
        chosen = CONVENTIONS[_detect(pairing.pairs, cache, problems)]

    results: list[CaseResult] = []
    total = len(pairing.pairs)
    for done, pair in enumerate(pairing.pairs, start=1):
        result = _evaluate_pair(pair, chosen, hd95, cache, problems)
        if result is not None:
            results.append(result)
        if progress is not None:
            progress(done, total, pair.case)
    return EvaluationResult(
        convention=chosen.name,
        cases=tuple(results),
        unpaired=tuple(unpaired),
        problems=tuple(problems),
    )


def _detect(pairs: Sequence[CasePair], cache: dict[Path, Segmentation], problems: list[str]) -> str:
    """Scan the references' labels (keeping some loaded for the scoring pass) and pick a convention."""
    labels: set[int] = set()
    cached = 0
    for pair in pairs:
        try:
            ref = load_segmentation(pair.ref)
        except RevprofError:
            continue  # reported when the case is scored
        labels |= present_labels(ref.labels)
        if cached + ref.labels.nbytes <= _CACHE_BYTES:
            cache[pair.ref] = ref
            cached += ref.labels.nbytes
    name, note = detect_convention(labels, [p.case for p in pairs])
    if note:
        problems.append(note)
    return name


def _evaluate_pair(pair: CasePair, convention: LabelConvention, hd95: bool,
                   cache: dict[Path, Segmentation], problems: list[str]) -> CaseResult | None:
    try:
        ref = cache.pop(pair.ref, None) or load_segmentation(pair.ref)
        pred = load_segmentation(pair.pred)
        if pred.labels.shape != ref.labels.shape:
            raise RevprofError(
                f"prediction shape {pred.labels.shape} ({pair.pred.name}) does not match "
                f"reference shape {ref.labels.shape} ({pair.ref.name})"
            )
        for side, seg in (("prediction", pred), ("reference", ref)):
            unknown = sorted(present_labels(seg.labels) - set(convention.labels))
            if unknown:
                problems.append(
                    f"{pair.case}: {side} holds labels {unknown} that {convention.name} does not "
                    "define; they count as background"
                )
        if not np.allclose(pred.spacing, ref.spacing, rtol=1e-3, atol=1e-4):
            problems.append(
                f"{pair.case}: prediction voxel spacing {pred.spacing} differs from the "
                f"reference's {ref.spacing}; HD95 uses the reference's"
            )
        elif not np.allclose(pred.affine, ref.affine, atol=1e-2):
            problems.append(
                f"{pair.case}: prediction and reference affines differ (orientation or origin); "
                "voxels are compared as stored"
            )
        dice, hd = score_case(pred, ref, convention, hd95=hd95)
    except RevprofError as error:
        problems.append(f"{pair.case}: not scored: {error}")
        return None
    return CaseResult(case=pair.case, pred=pair.pred, ref=pair.ref, dice=dice, hd95=hd)
