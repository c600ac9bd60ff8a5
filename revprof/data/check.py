"""Check a dataset folder: what was found, and everything that would stop training on it."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from revprof.data.layouts import Case, Problem, discover
from revprof.data.nifti import load_case
from revprof.data.orientation import orientation_code
from revprof.errors import RevprofError


@dataclass(frozen=True)
class CaseSummary:
    """What one readable case holds.

    Attributes:
        case_id: the case.
        convention: its label convention.
        shape: spatial shape ``(D, H, W)``.
        spacing: voxel size in mm.
        labels: label values present in the segmentation, or None without one.
        notes: what loading adjusted (a file reoriented onto the first image's grid).
        orientation: axis codes of the voxel axes (``"LPS"`` for the BraTS releases,
            ``"RAS"``...), from the first image's affine.
    """

    case_id: str
    convention: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    labels: tuple[int, ...] | None
    notes: tuple[str, ...] = ()
    orientation: str = ""

    @property
    def inference_only(self) -> bool:
        """True without a segmentation."""
        return self.labels is None


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`.

    Attributes:
        root: the checked folder.
        cases: summaries of the cases that loaded cleanly.
        problems: every problem, each naming case and file.
        found: number of cases discovered (readable or not).
    """

    root: Path
    cases: list[CaseSummary] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    found: int = 0

    @property
    def errors(self) -> list[Problem]:
        """Problems that make a case unusable."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        """True when at least one case was found and every case is usable."""
        return bool(self.cases) and not self.errors

    def per_convention(self) -> dict[str, int]:
        """Number of usable cases per convention."""
        return dict(Counter(c.convention for c in self.cases))

    def shapes(self) -> dict[tuple[int, int, int], int]:
        """Number of usable cases per shape."""
        return dict(Counter(c.shape for c in self.cases))

    def spacings(self) -> dict[tuple[float, float, float], int]:
        """Number of usable cases per voxel spacing (rounded to 0.01 mm)."""
        return dict(Counter((round(c.spacing[0], 2), round(c.spacing[1], 2), round(c.spacing[2], 2))
                            for c in self.cases))

    def orientations(self) -> dict[str, int]:
        """Number of usable cases per orientation (axis codes)."""
        return dict(Counter(c.orientation for c in self.cases))

    def label_values(self) -> list[int]:
        """Union of the label values of all segmentations."""
        values: set[int] = set()
        for c in self.cases:
            values.update(c.labels or ())
        return sorted(values)


def check_case(case: Case) -> CaseSummary:
    """Read a case completely and summarise it.

    Raises:
        RevprofError: any problem :func:`revprof.data.load_case` detects.
    """
    loaded = load_case(case)
    image = np.asarray(loaded.image)
    for channel in range(image.shape[0]):
        if not np.isfinite(image[channel]).any():
            raise RevprofError(f"case {case.case_id}: image channel {channel} holds no finite "
                               f"value (all NaN or infinite); the case is unusable")
    labels = None
    if loaded.labels is not None:
        labels = tuple(int(v) for v in np.unique(loaded.labels))
    return CaseSummary(
        case_id=case.case_id, convention=case.convention, shape=loaded.shape,
        spacing=loaded.spacing, labels=labels, notes=loaded.notes,
        orientation=orientation_code(loaded.affine),
    )


def check_dataset(
    path: str | os.PathLike[str],
    convention: str | None = None,
    progress: Callable[[int, int, Case], None] | None = None,
) -> CheckReport:
    """Discover and fully read every case under ``path``.

    Args:
        path: dataset, cohort or case folder.
        convention: force a label convention instead of detecting it.
        progress: called as ``progress(i, total, case)`` before each case is read.

    Returns:
        A :class:`CheckReport`; ``report.ok`` is True when the dataset is usable.

    Raises:
        RevprofError: ``path`` is not a folder or ``convention`` is unknown.
    """
    index = discover(path, convention)
    report = CheckReport(root=index.root, problems=list(index.problems), found=len(index.cases))
    if not index.cases and not index.errors:
        report.problems.append(Problem(
            "no BraTS or Decathlon case found (expected <ID>/<ID>_flair.nii.gz..., "
            "<ID>/<ID>-t2f.nii.gz... or imagesTr/)", path=index.root,
        ))
    for i, case in enumerate(index.cases):
        if progress is not None:
            progress(i, len(index.cases), case)
        try:
            summary = check_case(case)
            report.cases.append(summary)
            report.problems.extend(Problem(note, case_id=case.case_id, severity="warning")
                                   for note in summary.notes)
        except RevprofError as error:
            text = str(error)
            prefix = f"case {case.case_id}: "
            report.problems.append(Problem(
                text[len(prefix):] if text.startswith(prefix) else text, case_id=case.case_id,
            ))
    return report


__all__ = ["CaseSummary", "CheckReport", "check_case", "check_dataset"]
