"""Find the cases of a BraTS-style dataset on disk, whatever public release layout it uses.

Supported layouts:

- **BraTS 2017–2021** (``brats2021`` labels): one folder per case,
  ``<ID>/<ID>_flair|_t1|_t1ce|_t2|_seg.nii.gz`` (or ``.nii``); 2018/2019 nest the cases in
  ``HGG/`` and ``LGG/``; 2020 ships CSV side files, which are ignored.
- **BraTS 2023+** (``brats2023`` labels, ``brats2024`` when the path says 2024):
  ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f|t1n|t1c|t2w|seg.nii.gz`` for the GLI, MEN, MET,
  PED and SSA cohorts. ``BraTS-GLI-00001-000`` and ``-001`` are time points of patient
  ``BraTS-GLI-00001``.
- **Medical Segmentation Decathlon** Task01_BrainTumour (``msd`` labels): ``imagesTr/*.nii.gz``
  4-D images ``(H, W, D, 4)`` (FLAIR, T1w, t1gd, T2w), ``labelsTr/``, ``dataset.json`` and
  ``imagesTs/`` without labels. macOS ``._*`` files are ignored.

Discovery only looks at names; it never reads image data (:mod:`revprof.data.check` does).
"""

from __future__ import annotations

import errno
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from revprof.data.conventions import get_convention
from revprof.errors import RevprofError

Severity = Literal["error", "warning"]

_NIFTI = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
# BraTS 2017-2021: <ID>_<modality>.nii[.gz]; t1ce must be tried before t1.
_OLD = re.compile(r"^(?P<id>.+?)_(?P<mod>flair|t1ce|t1|t2|seg)\.nii(?:\.gz)?$", re.IGNORECASE)
# BraTS 2023+: <ID>-<modality>.nii[.gz].
_NEW = re.compile(r"^(?P<id>.+?)-(?P<mod>t2f|t1n|t1c|t2w|seg)\.nii(?:\.gz)?$", re.IGNORECASE)
_NEW_ID = re.compile(r"^(?P<patient>.+-\d+)-(?P<timepoint>\d+)$")
_SEG_HINT = re.compile(r"seg", re.IGNORECASE)

_OLD_MODALITIES = ("flair", "t1", "t1ce", "t2")
_NEW_MODALITIES = ("t2f", "t1n", "t1c", "t2w")


@dataclass(frozen=True)
class Problem:
    """Something discovery, loading or checking skipped or had to work around.

    Attributes:
        message: what is wrong and, where it helps, what was expected.
        case_id: the case concerned, or None for dataset-wide problems.
        path: the file or folder concerned, or None.
        severity: ``"error"`` (the case is unusable and was skipped) or ``"warning"``
            (the case is used, but something was irregular).
    """

    message: str
    case_id: str | None = None
    path: Path | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        parts: list[str] = [self.severity]
        if self.case_id is not None:
            parts.append(f"case {self.case_id}")
        if self.path is not None:
            parts.append(f"file {self.path}")
        return ": ".join(parts) + f": {self.message}"


@dataclass(frozen=True)
class Case:
    """One case (one patient at one time point) of a dataset.

    Attributes:
        case_id: the release's case identifier, e.g. ``BraTS2021_00000``, ``BraTS-GLI-00001-000``,
            ``BRATS_001``.
        patient_id: identifier shared by every time point of one patient (used for splitting).
        convention: name of the label convention (a key of ``CONVENTIONS``).
        images: four image paths in revprof's channel order (FLAIR, T1, T1ce, T2). For the
            Decathlon layout all four are the same 4-D file (see ``packed``).
        seg: segmentation path, or None when the case can only be used for inference.
        packed: True when ``images`` is one 4-D file ``(H, W, D, 4)`` holding every modality.
    """

    case_id: str
    patient_id: str
    convention: str
    images: tuple[Path, Path, Path, Path]
    seg: Path | None
    packed: bool = False

    @property
    def has_seg(self) -> bool:
        """True when the case has a segmentation (usable for training and evaluation)."""
        return self.seg is not None

    @property
    def files(self) -> tuple[Path, ...]:
        """Every distinct file of the case, images first, segmentation last."""
        unique = tuple(dict.fromkeys(self.images))
        return unique + ((self.seg,) if self.seg is not None else ())


@dataclass
class DatasetIndex:
    """The cases found under ``root`` and the problems met on the way.

    Attributes:
        root: the folder that was searched.
        cases: usable cases, sorted by case id.
        problems: skipped cases and irregularities, each naming case and file.
    """

    root: Path
    cases: list[Case] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """Problems that made a case unusable."""
        return [p for p in self.problems if p.severity == "error"]

    def by_convention(self) -> dict[str, list[Case]]:
        """Cases grouped by label convention."""
        groups: dict[str, list[Case]] = defaultdict(list)
        for case in self.cases:
            groups[case.convention].append(case)
        return dict(groups)

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)


def discover(root: str | os.PathLike[str], convention: str | None = None) -> DatasetIndex:
    """Find every case under ``root`` (a dataset folder, a cohort folder or one case folder).

    Args:
        root: folder to search recursively.
        convention: force this label convention instead of detecting it from names.

    Returns:
        A :class:`DatasetIndex`; cases with a missing modality are left out and reported as
        problems.

    Raises:
        RevprofError: ``root`` does not exist or is not a folder, or ``convention`` is unknown.
    """
    root_path = Path(root).expanduser()
    if convention is not None:
        get_convention(convention)
    if not root_path.exists():
        raise RevprofError(f"dataset folder {root_path} does not exist")
    if not root_path.is_dir():
        raise RevprofError(f"dataset path {root_path} is not a folder")
    index = DatasetIndex(root=root_path)
    walked: dict[str, Path] = {}  # real path of each folder read -> the path it was read under
    for directory, dirs, files in os.walk(root_path, followlinks=True):
        here = Path(directory)
        if not _first_visit(here, root_path, walked, index):
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        files = _followable(here, files, index)
        if _is_msd(here, dirs, files):
            dirs[:] = []  # the Decathlon folders are read by _discover_msd
            _discover_msd(here, convention, index)
        else:
            files = sorted(f for f in files if not _hidden(f))
            _discover_brats_dir(root_path, here, files, convention, index)
    index.cases.sort(key=lambda c: c.case_id)
    return index


def _first_visit(here: Path, root: Path, walked: dict[str, Path], index: DatasetIndex) -> bool:
    """Whether the walk reads folder ``here``, which it may have reached through links.

    Links to folders are followed, so a split assembled from links to case folders reads as if
    the cases were copied there. A folder already read under another path (two links to one
    case) is skipped with a warning.

    Raises:
        RevprofError: ``here`` leads back to a folder it lies in (a link loop).
    """
    real = os.path.realpath(here)
    above = {os.path.realpath(p) for p in (here.parent, *here.parent.parents)
             if p == root or root in p.parents}
    if here != root and real in above:
        links = [p for p in (here, *here.parents) if root in p.parents and p.is_symlink()]
        link = links[-1] if links else here
        raise RevprofError(
            f"link loop: {link} (to {os.readlink(link) if link.is_symlink() else real}) leads "
            f"back to {real}, a folder it lies in; remove the link or point it at a case folder"
        )
    if real in walked:
        index.problems.append(Problem(
            f"ignored: the same folder as {walked[real]} (both lead to {real})",
            path=here, severity="warning",
        ))
        return False
    walked[real] = here
    return True


def _followable(here: Path, files: list[str], index: DatasetIndex) -> list[str]:
    """The names in ``files`` (what ``os.walk`` lists as not a folder) without links that lead
    nowhere or round in a loop, each reported as an error naming the link."""
    kept = []
    for name in files:
        path = here / name
        if path.is_symlink() and not _hidden(name):
            try:
                os.stat(path)
            except OSError as error:
                what = "a link loop" if error.errno == errno.ELOOP else "a broken link"
                index.problems.append(Problem(
                    f"{what} (to {os.readlink(path)}: {error.strerror}); skipped",
                    path=path,
                ))
                continue
        kept.append(name)
    return kept


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("._") or name.startswith("__MACOSX")


def _is_msd(directory: Path, dirs: list[str], files: list[str]) -> bool:
    return "imagesTr" in dirs or "imagesTs" in dirs


_YEAR_2024 = re.compile(r"(?<!\d)2024(?!\d)")


def _detect_new_convention(root: Path, directory: Path) -> str:
    """``brats2024`` when the dataset folder or a folder below it names 2024 (not the case id)."""
    relative = directory.relative_to(root).parts[:-1] if directory != root else ()
    names = (root.name, *relative)
    return "brats2024" if any(_YEAR_2024.search(n) for n in names) else "brats2023"


def _patient_of(case_id: str, style: str) -> str:
    if style == "new":
        match = _NEW_ID.match(case_id)
        if match:
            return match.group("patient")
    return case_id


def _discover_brats_dir(
    root: Path, directory: Path, files: list[str], convention: str | None, index: DatasetIndex
) -> None:
    nifti = [f for f in files if _NIFTI.search(f)]
    if not nifti:
        return
    # Group the files of this folder by (style, case id); case ids compare case-insensitively.
    groups: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    spelled: dict[tuple[str, str], str] = {}
    unmatched: list[str] = []
    for name in nifti:
        for style, pattern in (("new", _NEW), ("old", _OLD)):
            match = pattern.match(name)
            if match:
                key = (style, match.group("id").lower())
                spelled.setdefault(key, match.group("id"))
                groups[key][match.group("mod").lower()].append(name)
                break
        else:
            unmatched.append(name)

    # A folder holding one case may have a misnamed segmentation (BraTS 2020 case 355).
    stray_seg: str | None = None
    if len(groups) == 1 and unmatched:
        (key,) = groups
        if "seg" not in groups[key]:
            hints = [n for n in unmatched if _SEG_HINT.search(n)]
            if len(hints) == 1:
                stray_seg = hints[0]
                unmatched.remove(stray_seg)

    owner = spelled[next(iter(groups))] if len(groups) == 1 else None
    for name in unmatched:
        index.problems.append(Problem(
            "ignored: the name matches no BraTS modality (expected <ID>_flair|_t1|_t1ce|_t2|_seg "
            "or <ID>-t2f|-t1n|-t1c|-t2w|-seg)",
            case_id=owner, path=directory / name, severity="warning",
        ))

    for key, mods in groups.items():
        style, _ = key
        case_id = spelled[key]
        wanted = _NEW_MODALITIES if style == "new" else _OLD_MODALITIES
        sep = "-" if style == "new" else "_"
        chosen: dict[str, Path] = {}
        for mod, names in mods.items():
            # Prefer .nii.gz over .nii when both exist.
            names = sorted(names, key=lambda n: (not n.lower().endswith(".gz"), n))
            chosen[mod] = directory / names[0]
            for extra in names[1:]:
                index.problems.append(Problem(
                    f"ignored: duplicate {mod} file, using {names[0]}",
                    case_id=case_id, path=directory / extra, severity="warning",
                ))
        missing = [m for m in wanted if m not in chosen]
        if missing:
            names = [f"{case_id}{sep}{m}.nii.gz" for m in missing]
            what = "image" if len(missing) == 1 else "images"
            index.problems.append(Problem(
                f"missing {', '.join(missing)} {what} (expected {', '.join(names)}); case skipped",
                case_id=case_id, path=directory / names[0],
            ))
            continue
        seg = chosen.get("seg")
        if seg is None and stray_seg is not None:
            seg = directory / stray_seg
            index.problems.append(Problem(
                f"segmentation is misnamed (expected {case_id}{sep}seg.nii.gz); using it anyway",
                case_id=case_id, path=seg, severity="warning",
            ))
        if convention is not None:
            conv = convention
        elif style == "new":
            conv = _detect_new_convention(root, directory)
        else:
            conv = "brats2021"
        images = tuple(chosen[m] for m in wanted)
        index.cases.append(Case(
            case_id=case_id,
            patient_id=_patient_of(case_id, style),
            convention=conv,
            images=images,  # type: ignore[arg-type]
            seg=seg,
        ))


def _discover_msd(root: Path, convention: str | None, index: DatasetIndex) -> None:
    conv = convention or "msd"
    labels_dir = root / "labelsTr"
    for sub in ("imagesTr", "imagesTs"):
        folder = root / sub
        if not folder.is_dir():
            continue
        for name in sorted(os.listdir(folder)):
            if _hidden(name):
                continue
            path = folder / name
            if not _NIFTI.search(name):
                index.problems.append(Problem(
                    "ignored: not a NIfTI file", case_id=None, path=path, severity="warning",
                ))
                continue
            case_id = _NIFTI.sub("", name)
            # nnU-Net style per-channel files (BRATS_001_0000.nii.gz) are not the MSD layout.
            seg: Path | None = None
            if sub == "imagesTr":
                for candidate in (labels_dir / name, labels_dir / f"{case_id}.nii",
                                  labels_dir / f"{case_id}.nii.gz"):
                    if candidate.is_file():
                        seg = candidate
                        break
                if seg is None:
                    index.problems.append(Problem(
                        "no label file in labelsTr/; usable for inference only",
                        case_id=case_id, path=labels_dir / name, severity="warning",
                    ))
            index.cases.append(Case(
                case_id=case_id, patient_id=case_id, convention=conv,
                images=(path, path, path, path), seg=seg, packed=True,
            ))
    if not index.cases:
        index.problems.append(Problem(
            "Decathlon layout without any image in imagesTr/ or imagesTs/", path=root,
        ))


__all__ = ["Case", "DatasetIndex", "Problem", "discover"]
