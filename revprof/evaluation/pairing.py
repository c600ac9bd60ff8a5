"""Pair prediction files with reference segmentations by case id, despite inconsistent names.

Discovery (both sides):

- NIfTI files (``.nii`` / ``.nii.gz``) directly in the folder; on the reference side, when some of
  them are segmentations (name ending ``seg``/``label``/``mask``…) only those are taken, so a flat
  folder that also holds the MRI modalities works;
- case folders (one level down, as the BraTS releases ship): the folder's segmentation file, or
  its only NIfTI file; the case is named after the folder.

Other files (JSON, CSV, hidden files) are ignored.

Canonical case key (:func:`case_key`), from the file or folder name with ``.nii[.gz]``, known
prefixes (``seg``, ``pred``, ``prediction``, ``label``, ``mask``) and suffixes (``seg``,
``segmentation``, ``pred``, ``prediction``, ``label``, ``labels``, ``mask``) removed:

1. BraTS 2023+ style, ``NNNNN-NNN`` anywhere (``BraTS-MET-00132-000-seg``, ``00132-000``,
   ``SEG-00217-000``, ``BraTS-MET_01325-000``) → ``"00132-000"`` (``-`` or ``_`` between);
2. BraTS 2017–2021 / MSD style, ``BraTS2021_00001``, ``BraTS20_Training_001``, ``BRATS_001``, or a
   bare number ``00001`` → the integer id, ``"1"``;
3. otherwise the cleaned name, lower-cased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CasePair", "Pairing", "case_key", "case_name", "find_segmentations", "pair_files"]

_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_SUFFIX = re.compile(r"[-_.](seg|segmentation|pred|prediction|label|labels|mask)$", re.IGNORECASE)
_PREFIX = re.compile(r"^(seg|pred|prediction|label|labels|mask)[-_.]", re.IGNORECASE)
_NEW_STYLE = re.compile(r"(?<!\d)(\d{5})[-_](\d{3})(?!\d)")
_OLD_STYLE = re.compile(
    r"^brats(?:\d{2,4})?_(?:(?:training|validation|testing)_)?(\d+)$", re.IGNORECASE
)
_NUMBER = re.compile(r"^\d+$")


def is_nifti(path: Path) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``, any case)."""
    return path.name.lower().endswith(_NIFTI_SUFFIXES) and not path.name.startswith(".")


def _strip_extension(name: str) -> str:
    lower = name.lower()
    for suffix in _NIFTI_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def case_name(name: str) -> str:
    """A file or folder name without ``.nii[.gz]`` and without known prefixes and suffixes.

    ``"BraTS-MET-00132-000-seg.nii.gz"`` → ``"BraTS-MET-00132-000"``; ``"SEG-00217-000.nii.gz"`` →
    ``"00217-000"``.
    """
    stem = _strip_extension(name)
    previous = None
    while stem != previous:  # strip repeatedly: "pred_x_seg", "x_pred_seg"
        previous = stem
        stem = _SUFFIX.sub("", stem)
        stem = _PREFIX.sub("", stem)
    return stem


def case_key(name: str) -> str:
    """The canonical case key of a file or folder name (see the module docstring).

    Examples:
        >>> case_key("BraTS-MET-00132-000-seg.nii.gz"), case_key("BraTS-MET_01325-000.nii.gz")
        ('00132-000', '01325-000')
        >>> case_key("BraTS2021_00001"), case_key("BraTS20_Training_001"), case_key("00001.nii")
        ('1', '1', '1')
    """
    stem = case_name(name)
    match = _NEW_STYLE.search(stem)
    if match:
        return f"{match.group(1)}-{match.group(2)}"
    match = _OLD_STYLE.match(stem)
    if match:
        return str(int(match.group(1)))
    if _NUMBER.match(stem):
        return str(int(stem))
    return stem.lower()


def _is_segmentation_name(path: Path) -> bool:
    stem = _strip_extension(path.name)
    return bool(re.search(r"[-_.](seg|segmentation|label|labels|mask)$", stem, re.IGNORECASE))


@dataclass(frozen=True)
class CasePair:
    """One prediction matched to one reference.

    Attributes:
        case: display id of the case (the reference's case folder or file name, cleaned).
        key: the canonical key both names share.
        pred: prediction file.
        ref: reference segmentation file.
    """

    case: str
    key: str
    pred: Path
    ref: Path


@dataclass(frozen=True)
class Pairing:
    """Result of :func:`pair_files`.

    Attributes:
        pairs: matched cases, sorted by case id.
        unpaired_pred: predictions with no reference.
        unpaired_ref: references with no prediction.
        problems: one line each: case folders without a usable file, duplicate keys.
    """

    pairs: tuple[CasePair, ...]
    unpaired_pred: tuple[Path, ...] = ()
    unpaired_ref: tuple[Path, ...] = ()
    problems: tuple[str, ...] = field(default=())


def find_segmentations(directory: Path, *, reference: bool) -> tuple[list[tuple[str, Path]], list[str]]:
    """List the segmentation files of a folder, flat or in case folders.

    Args:
        directory: the folder.
        reference: prefer files named as segmentations (``*seg.nii.gz``) over modality images.

    Returns:
        ``([(case name, file), ...], problems)`` sorted by name.
    """
    found: list[tuple[str, Path]] = []
    problems: list[str] = []
    entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if p.is_file() and is_nifti(p)]
    if reference and any(_is_segmentation_name(p) for p in files):
        files = [p for p in files if _is_segmentation_name(p)]
    found.extend((case_name(p.name), p) for p in files)
    for folder in (p for p in entries if p.is_dir()):
        inside = sorted(p for p in folder.iterdir() if p.is_file() and is_nifti(p))
        if not inside:
            continue
        segs = [p for p in inside if _is_segmentation_name(p)]
        if len(segs) == 1:
            found.append((case_name(folder.name), segs[0]))
        elif len(segs) > 1:
            problems.append(
                f"case folder {folder} holds several segmentations "
                f"({', '.join(p.name for p in segs)}); skipped"
            )
        elif len(inside) == 1:
            found.append((case_name(folder.name), inside[0]))
        elif reference:
            problems.append(f"case folder {folder} has no segmentation file (*seg.nii.gz); skipped")
        else:
            problems.append(
                f"case folder {folder} holds {len(inside)} NIfTI files and none is named as a "
                "segmentation; skipped"
            )
    return found, problems


def _by_key(items: list[tuple[str, Path]], side: str,
            problems: list[str]) -> tuple[dict[str, tuple[str, Path]], list[Path]]:
    keyed: dict[str, tuple[str, Path]] = {}
    duplicates: list[Path] = []
    for name, path in items:
        key = case_key(name)
        if key in keyed:
            problems.append(
                f"{side} {path} has the same case id {key!r} as {keyed[key][1]}; left unpaired"
            )
            duplicates.append(path)
        else:
            keyed[key] = (name, path)
    return keyed, duplicates


def pair_files(pred_dir: Path, ref_dir: Path) -> Pairing:
    """Match predictions to references by :func:`case_key`.

    Args:
        pred_dir: folder of predictions (flat, or case folders).
        ref_dir: folder of references (a dataset folder of case folders, or flat seg files).

    Returns:
        The pairs, sorted by case id, and whatever could not be paired.
    """
    preds, pred_problems = find_segmentations(Path(pred_dir), reference=False)
    refs, ref_problems = find_segmentations(Path(ref_dir), reference=True)
    problems = pred_problems + ref_problems
    pred_keyed, pred_dupes = _by_key(preds, "prediction", problems)
    ref_keyed, ref_dupes = _by_key(refs, "reference", problems)
    pairs = [
        CasePair(case=ref_keyed[key][0], key=key, pred=pred_keyed[key][1], ref=ref_keyed[key][1])
        for key in ref_keyed
        if key in pred_keyed
    ]
    pairs.sort(key=lambda p: (p.case, p.key))
    unpaired_pred = sorted([p for k, (_, p) in pred_keyed.items() if k not in ref_keyed] + pred_dupes)
    unpaired_ref = sorted([p for k, (_, p) in ref_keyed.items() if k not in pred_keyed] + ref_dupes)
    return Pairing(
        pairs=tuple(pairs),
        unpaired_pred=tuple(unpaired_pred),
        unpaired_ref=tuple(unpaired_ref),
        problems=tuple(problems),
    )
