"""Score a folder of predicted segmentations against a folder of references, BraTS style.

For every paired case (see :mod:`revprof.evaluation.pairing`) and every region (WT, TC, ET of the
label convention): Dice (:mod:`revprof.evaluation.dice`), HD95 in mm using the reference's voxel
spacing or in voxels (:mod:`revprof.evaluation.hausdorff`), and the lesion-wise Dice/HD95 with
TP/FP/FN lesion counts (:mod:`revprof.evaluation.lesions`). The mean per region is over the
scored cases.

A prediction stored in another orientation of the reference's grid (LPS instead of RAS, axes
swapped) is reoriented onto it first, and the problems list says so; one on a really different
grid, or holding values that are not labels of the convention (a probability map), is not scored.
Cases that cannot be scored are reported in :attr:`EvaluationResult.problems` and left out of the
means; they never stop the run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from revprof.data.conventions import (
    CONVENTIONS, REGIONS, LabelConvention, get_convention, tell_convention,
)
from revprof.data.nifti import HeaderError, open_nifti, present_labels, to_label_map
from revprof.data.orientation import align_to_grid
from revprof.errors import RevprofError, look_up
from revprof.evaluation.dice import dice_score
from revprof.evaluation.hausdorff import HD95_EMPTY_PENALTY, OFFICIAL_HD95_PENALTY
from revprof.evaluation.hausdorff import hd95 as hd95_distance
from revprof.evaluation.io import Segmentation, load_segmentation
from revprof.evaluation.lesions import LesionRules, LesionScores, LesionStyle, lesion_rules, lesion_scores
from revprof.evaluation.pairing import CasePair, pair_files

__all__ = [
    "HD95_UNITS",
    "Hd95Unit",
    "CaseResult",
    "EvaluationResult",
    "ProgressCallback",
    "ScoringOptions",
    "detect_convention",
    "evaluate",
    "present_labels",
    "region_dice_of_labels",
    "score_case",
    "scoring_options",
]

Hd95Unit = Literal["mm", "voxel"]
HD95_UNITS: tuple[Hd95Unit, ...] = get_args(Hd95Unit)
"""HD95 units: millimetres from the header's spacing (default), or voxels (the official tool's
global HD95)."""


@dataclass(frozen=True)
class ScoringOptions:
    """How :func:`evaluate` scores a case.

    Attributes:
        hd95: compute HD95 (global and per lesion).
        hd95_units: ``mm`` (default: physically meaningful and comparable between anisotropic
            scans) or ``voxel`` (what the official tool reports as its global HD95).
        lesions: the lesion-wise rules, or None to skip lesion-wise scores.
        official: reproduce the official tool's numbers: global HD95 in voxels, per-lesion HD95
            with the header's (x, y, z) spacing applied to reversed (z, y, x) axes as it does,
            and 373 (:data:`OFFICIAL_HD95_PENALTY`) where one side is empty.
    """

    hd95: bool = True
    hd95_units: Hd95Unit = "mm"
    lesions: LesionRules | None = LesionRules()
    official: bool = False

    @property
    def penalty(self) -> float:
        """HD95 of a region (or lesion) present on one side only: 373 with ``official``, else the
        lesion rules' penalty (373.1287 by default)."""
        if self.official:
            return OFFICIAL_HD95_PENALTY
        return self.lesions.penalty if self.lesions is not None else HD95_EMPTY_PENALTY

    def describe(self) -> str:
        """A short description for table titles."""
        if self.official:
            return "official tool's conventions: global HD95 in voxels"
        return f"HD95 in {self.hd95_units}"


def scoring_options(*, hd95: bool = True, hd95_units: Hd95Unit | None = None, lesion_wise: bool = True,
                    lesion_style: LesionStyle = "official", challenge: str | None = None,
                    empty_penalty: float | None = None, official: bool = False) -> ScoringOptions:
    """Validated :class:`ScoringOptions` from command-line style settings.

    Raises:
        RevprofError: unknown units, rules or challenge; ``--official`` combined with
            ``--hd95-units mm``, ``--lesion-rules brats2023`` or another ``--empty-penalty``
            than the official 373.
    """
    if hd95_units is not None:
        look_up("--hd95-units", hd95_units, HD95_UNITS)
    if official:
        if hd95_units == "mm":
            raise RevprofError("--official measures the global HD95 in voxel units as the official "
                               "tool does; drop --hd95-units mm or --official")
        if lesion_style != "official":
            raise RevprofError("--official uses the official tool's lesion rules; drop "
                               f"--lesion-rules {lesion_style} or --official")
        if empty_penalty is not None and empty_penalty != OFFICIAL_HD95_PENALTY:
            raise RevprofError(f"--official scores HD95 {OFFICIAL_HD95_PENALTY:g} where one side is "
                               f"empty, as the official pipeline writes it; drop --empty-penalty "
                               f"{empty_penalty:g} or --official")
    rules = lesion_rules(lesion_style, challenge, empty_penalty)
    return ScoringOptions(hd95=hd95, hd95_units="voxel" if official else (hd95_units or "mm"),
                          lesions=rules if lesion_wise else None, official=official)


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
        hd95: HD95 per region (in :attr:`EvaluationResult.hd95_units`), or ``None`` when not
            computed.
        lesions: lesion-wise scores per region, or ``None`` when not computed.
        empty_reference: regions with no voxel in the reference (e.g. ``("et",)`` for a case
            without enhancing tumour). BraTS scores such a region's Dice 1 when the prediction is
            empty too and 0 otherwise, which moves the mean far more than one case's other
            regions do.
        pred_convention: the label convention the prediction was read in, when it is another
            than the references' (:attr:`EvaluationResult.convention`); None when the same.
    """

    case: str
    pred: Path
    ref: Path
    dice: dict[str, float]
    hd95: dict[str, float] | None
    lesions: dict[str, LesionScores] | None = None
    empty_reference: tuple[str, ...] = ()
    pred_convention: str | None = None


@dataclass(frozen=True)
class EvaluationResult:
    """Everything :func:`evaluate` found.

    Attributes:
        convention: name of the label convention used.
        options: how the cases were scored (HD95 units, lesion rules).
        cases: scored cases, sorted by case id.
        unpaired: files (as strings) with no counterpart on the other side, predictions first.
        problems: one human-readable line each: cases not scored and why, label warnings,
            an ambiguous convention, duplicate case ids.
    """

    convention: str
    cases: tuple[CaseResult, ...]
    unpaired: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    options: ScoringOptions = ScoringOptions()

    @property
    def hd95_computed(self) -> bool:
        """Whether HD95 was computed (false for ``hd95=False`` or when no case was scored)."""
        return bool(self.cases) and all(c.hd95 is not None for c in self.cases)

    @property
    def lesions_computed(self) -> bool:
        """Whether lesion-wise scores were computed for every scored case."""
        return bool(self.cases) and all(c.lesions is not None for c in self.cases)

    def mean(self) -> dict[str, dict[str, float | None]]:
        """Mean per region over the scored cases (``None`` when undefined).

        Returns:
            ``{"dice", "dice_nonempty", "hd95", "lesion_dice", "lesion_hd95"}``, each
            ``{wt, tc, et}``; ``dice_nonempty`` leaves out the cases whose reference has no voxel
            of the region (``None`` when every case's is empty); the lesion-wise means are the
            challenges' ranking figures (mean over cases of each case's lesion-wise score).
        """
        none: dict[str, float | None] = {r: None for r in REGIONS}
        out = {"dice": dict(none), "dice_nonempty": dict(none), "hd95": dict(none),
               "lesion_dice": dict(none), "lesion_hd95": dict(none)}
        if not self.cases:
            return out
        out["dice"] = {r: float(np.mean([c.dice[r] for c in self.cases])) for r in REGIONS}
        out["dice_nonempty"] = {r: mean_over_nonempty([(c.dice[r], r in c.empty_reference)
                                                       for c in self.cases]) for r in REGIONS}
        if self.hd95_computed:
            out["hd95"] = {r: float(np.mean([c.hd95[r] for c in self.cases])) for r in REGIONS}  # type: ignore[index]
        if self.lesions_computed:
            out["lesion_dice"] = {r: float(np.mean([c.lesions[r].dice for c in self.cases]))  # type: ignore[index]
                                  for r in REGIONS}
            if self.hd95_computed:
                out["lesion_hd95"] = {r: float(np.mean([c.lesions[r].hd95 for c in self.cases]))  # type: ignore[index]
                                      for r in REGIONS}
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict.

        Returns:
            ``{"convention", "hd95_units", "official", "lesion_rules": {...} | null,
            "cases": [{"case", "dice": {wt, tc, et}, "hd95": {...},
            "lesions": {wt: {"tp", "fp", "fn", "dice", "hd95", "matched_dice", "matched_hd95"},
            ...} | null, "empty_reference": [...], "pred_convention"}, ...], "mean": {...},
            "unpaired": [...], "problems": [...]}``; values are ``null`` when not computed;
            ``convention`` is the references', ``pred_convention`` the one each prediction was
            read in.
        """
        none = {r: None for r in REGIONS}
        rules = self.options.lesions
        cases = []
        for c in self.cases:
            lesions = None
            if c.lesions is not None:
                lesions = {r: c.lesions[r].to_json() for r in REGIONS}
                if not self.options.hd95:
                    for r in REGIONS:
                        lesions[r]["hd95"] = lesions[r]["matched_hd95"] = None
            cases.append({
                "case": c.case,
                "dice": {r: c.dice[r] for r in REGIONS},
                "hd95": {r: c.hd95[r] for r in REGIONS} if c.hd95 is not None else dict(none),
                "lesions": lesions,
                "empty_reference": list(c.empty_reference),
                "pred_convention": c.pred_convention or self.convention,
            })
        return {
            "convention": self.convention,
            "hd95_units": self.options.hd95_units,
            "official": self.options.official,
            "lesion_rules": None if rules is None else {
                "style": rules.style, "challenge": rules.challenge, "dilation": rules.dilation,
                "min_volume_mm3": rules.min_volume, "penalty": self.options.penalty,
            },
            "cases": cases,
            "mean": self.mean(),
            "unpaired": list(self.unpaired),
            "problems": list(self.problems),
        }

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per case and region: ``case, region, dice, hd95,
        lesion_dice, lesion_hd95, tp, fp, fn`` (NaN where not computed)."""
        import pandas as pd

        nan = float("nan")
        rows = []
        for c in self.cases:
            for r in REGIONS:
                les = c.lesions[r] if c.lesions is not None else None
                rows.append({
                    "case": c.case,
                    "region": r,
                    "dice": c.dice[r],
                    "hd95": c.hd95[r] if c.hd95 is not None else nan,
                    "lesion_dice": les.dice if les is not None else nan,
                    "lesion_hd95": les.hd95 if les is not None and c.hd95 is not None else nan,
                    "tp": les.tp if les is not None else nan,
                    "fp": les.fp if les is not None else nan,
                    "fn": les.fn if les is not None else nan,
                })
        return pd.DataFrame(rows, columns=["case", "region", "dice", "hd95", "lesion_dice",
                                           "lesion_hd95", "tp", "fp", "fn"])


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


def mean_over_nonempty(scores: Sequence[tuple[float, bool]]) -> float | None:
    """Mean of the scores whose reference region is not empty (``(score, empty)`` pairs);
    ``None`` when every reference is empty."""
    kept = [score for score, empty in scores if not empty]
    return float(np.mean(kept)) if kept else None


def empty_reference_regions(ref: np.ndarray, convention: LabelConvention) -> tuple[str, ...]:
    """The regions (of ``wt``, ``tc``, ``et``) with no voxel in the reference label map."""
    return tuple(region for region in REGIONS
                 if not _region_mask(ref, convention.regions[region]).any())


def _region_mask(labels: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    """Boolean ``(D, H, W)`` mask of the voxels whose label is one of ``values``."""
    mask = labels == values[0]
    for value in values[1:]:
        mask |= labels == value
    return mask


def region_dice_of_labels(pred: np.ndarray, ref: np.ndarray,
                          convention: LabelConvention) -> dict[str, float]:
    """Dice per region of two label maps ``(D, H, W)`` on the same grid — the Dice ``evaluate``
    reports, and the one training's validation reports.

    Regions come from the labels (WT, TC, ET of ``convention``), so they are nested by
    construction (ET ⊆ TC ⊆ WT).
    """
    if pred.shape != ref.shape:
        raise RevprofError(f"prediction shape {pred.shape} does not match reference shape {ref.shape}")
    return {region: dice_score(_region_mask(pred, convention.regions[region]),
                               _region_mask(ref, convention.regions[region]))
            for region in REGIONS}


def score_case(pred: Segmentation, ref: Segmentation, convention: LabelConvention,
               options: ScoringOptions = ScoringOptions(),
               pred_convention: LabelConvention | None = None,
               ) -> tuple[dict[str, float], dict[str, float] | None, dict[str, LesionScores] | None]:
    """Dice, HD95 and lesion-wise scores per region of one case (both on the reference's grid).

    Args:
        pred: predicted label map ``(D, H, W)``.
        ref: reference label map, same shape.
        convention: label convention of the reference (and of the prediction by default).
        options: HD95 units and lesion rules.
        pred_convention: label convention of the prediction when it is another (each region is
            built from each side's own labels).

    Returns:
        ``(dice per region, HD95 per region or None, lesion scores per region or None)``.

    Raises:
        RevprofError: the shapes differ.
    """
    if pred.labels.shape != ref.labels.shape:
        raise RevprofError(
            f"prediction shape {pred.labels.shape} does not match reference shape "
            f"{ref.labels.shape}"
        )
    spacing = tuple(float(v) for v in ref.spacing)
    global_spacing = None if options.hd95_units == "voxel" else spacing
    if options.official:
        lesion_spacing: tuple[float, ...] | None = spacing[::-1]  # as the official tool (see docs)
    else:
        lesion_spacing = global_spacing
    dice: dict[str, float] = {}
    hd: dict[str, float] | None = {} if options.hd95 else None
    lesions: dict[str, LesionScores] | None = {} if options.lesions is not None else None
    rules = replace(options.lesions, penalty=options.penalty) if options.lesions is not None else None
    pred_convention = pred_convention or convention
    for region in REGIONS:
        p = _region_mask(pred.labels, pred_convention.regions[region])
        r = _region_mask(ref.labels, convention.regions[region])
        dice[region] = dice_score(p, r)
        if hd is not None:
            hd[region] = hd95_distance(p, r, global_spacing, penalty=options.penalty)
        if lesions is not None:
            lesions[region] = lesion_scores(p, r, rules,  # type: ignore[arg-type]
                                            hd95_spacing=lesion_spacing, spacing=spacing)
    return dice, hd, lesions


def _check_dir(path: Path | str, option: str) -> Path:
    directory = Path(path)
    if not directory.exists():
        raise RevprofError(f"{option} folder does not exist: {directory}")
    if not directory.is_dir():
        raise RevprofError(f"{option} must be a folder of NIfTI files; got a file: {directory}")
    return directory


def evaluate(pred_dir: Path | str, ref_dir: Path | str, convention: str | None = None,
             hd95: bool = True, progress: ProgressCallback | None = None,
             options: ScoringOptions | None = None,
             pred_convention: str | None = None) -> EvaluationResult:
    """Evaluate every prediction against its reference.

    Args:
        pred_dir: folder of predicted label maps (flat, or case folders), named by case id in any
            of the usual ways.
        ref_dir: folder of reference segmentations (a BraTS dataset folder of case folders, or a
            flat folder of ``*seg.nii.gz``).
        convention: label convention of the references (``brats2021``, ``brats2023``,
            ``brats2024``, ``msd``); ``None`` detects it from the reference labels and names.
            Each prediction is read in it when it defines the prediction's labels, else in the
            convention its own labels tell (:func:`revprof.data.conventions.tell_convention`):
            a BraTS 2023-style prediction (ET = 3) against 2018 references (ET = 4) is scored
            region by region, and its case names the convention it was read in.
        hd95: also compute HD95 (the slower metric); ignored when ``options`` is given.
        progress: called after each case.
        options: HD95 units, lesion rules, ``official`` (see :func:`scoring_options`); default:
            HD95 in mm, lesion-wise scores with the official rules.
        pred_convention: read every prediction in this convention instead (labels it does not
            define are then not scored).

    Returns:
        Per-case scores, means, unpaired files and problems.

    Raises:
        RevprofError: a folder is missing or holds no NIfTI file, no prediction matches any
            reference, a file's header is damaged (its voxel size or affine describes no grid),
            or the convention is unknown / cannot be detected.
    """
    if options is None:
        options = ScoringOptions(hd95=hd95)
    preds_at = _check_dir(pred_dir, "--pred")
    refs_at = _check_dir(ref_dir, "--ref")
    chosen = get_convention(convention) if convention is not None else None
    forced = get_convention(pred_convention) if pred_convention is not None else None

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
    _check_headers(pairing.pairs)
    problems: list[str] = list(pairing.problems)
    unpaired = [str(p) for p in pairing.unpaired_pred] + [str(p) for p in pairing.unpaired_ref]

    cache: dict[Path, Segmentation] = {}
    if chosen is None:
        chosen = CONVENTIONS[_detect(pairing.pairs, cache, problems)]

    results: list[CaseResult] = []
    total = len(pairing.pairs)
    for done, pair in enumerate(pairing.pairs, start=1):
        result = _evaluate_pair(pair, chosen, forced, options, cache, problems)
        if result is not None:
            results.append(result)
        if progress is not None:
            progress(done, total, pair.case)
    return EvaluationResult(
        convention=chosen.name,
        cases=tuple(results),
        unpaired=tuple(unpaired),
        problems=tuple(problems),
        options=options,
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


def _check_headers(pairs: Sequence[CasePair]) -> None:
    """Refuse, before scoring anything, a file whose header's geometry is damaged.

    Raises:
        HeaderError: the first such file, named with what is wrong.
    """
    for pair in pairs:
        for path in (pair.ref, pair.pred):
            try:
                open_nifti(path)
            except HeaderError:
                raise
            except RevprofError:
                pass  # an unreadable file: that case is reported as not scored


def _evaluate_pair(pair: CasePair, convention: LabelConvention, forced: LabelConvention | None,
                   options: ScoringOptions, cache: dict[Path, Segmentation],
                   problems: list[str]) -> CaseResult | None:
    try:
        ref = cache.pop(pair.ref, None) or load_segmentation(pair.ref)
        to_label_map(ref.labels, pair.ref, convention.name)
        pred = load_segmentation(pair.pred, forced.name if forced is not None else None)
        pred_convention = forced or tell_convention(
            present_labels(pred.labels), convention, decathlon=bool(_MSD_NAME.match(pair.case)),
            what=f"prediction {pair.pred.name}")
        labels, note = align_to_grid(pred.labels, pred.affine, ref.affine, ref.labels.shape,
                                     what=f"prediction {pair.pred.name}",
                                     target=f"reference {pair.ref.name}")
        if note is not None:
            problems.append(f"{pair.case}: {note}")
            pred = Segmentation(labels=labels, spacing=ref.spacing, affine=ref.affine)
        dice, hd, lesions = score_case(pred, ref, convention, options, pred_convention)
    except RevprofError as error:
        problems.append(f"{pair.case}: not scored: {error}")
        return None
    return CaseResult(case=pair.case, pred=pair.pred, ref=pair.ref, dice=dice, hd95=hd,
                      lesions=lesions,
                      empty_reference=empty_reference_regions(ref.labels, convention),
                      pred_convention=(None if pred_convention is convention
                                       else pred_convention.name))
