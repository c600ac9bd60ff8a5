"""Label conventions of the public BraTS releases and the three evaluated tumour regions.

Every release encodes the tumour sub-regions with its own integer labels. The three regions
that the challenges score, and that revprof trains on, are built from them:

- WT, whole tumour: every tumour label (core and oedema);
- TC, tumour core: the necrotic / non-enhancing core and the enhancing tumour;
- ET, enhancing tumour.

| convention | releases | labels | WT | TC | ET |
|---|---|---|---|---|---|
| ``brats2021`` | BraTS 2017–2021 | 1 NCR/NET, 2 ED, 4 ET | 1,2,4 | 1,4 | 4 |
| ``brats2023`` | BraTS 2023 GLI/MEN/MET/PED/SSA | 1 NETC, 2 SNFH, 3 ET | 1,2,3 | 1,3 | 3 |
| ``brats2024`` | BraTS 2024 GLI (post-treatment) | 1 NETC, 2 SNFH, 3 ET, 4 RC | 1,2,3 | 1,3 | 3 |
| ``msd`` | Decathlon Task01_BrainTumour | 1 oedema, 2 non-enh., 3 enh. | 1,2,3 | 2,3 | 3 |

The resection cavity (RC, label 4 of BraTS 2024 GLI) lies outside every tumour region.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from revprof.errors import RevprofError, look_up

REGIONS: tuple[str, str, str] = ("wt", "tc", "et")
"""Region channel order everywhere in revprof: whole tumour, tumour core, enhancing tumour."""


@dataclass(frozen=True)
class LabelConvention:
    """How one release encodes tumour sub-regions.

    Attributes:
        name: the convention's name (``brats2021``, ``brats2023``, ``brats2024``, ``msd``).
        labels: every valid label value, background 0 included, with its meaning.
        regions: for each of WT, TC, ET the label values that make it up.
        modalities: the release's modality names in revprof's channel order
            (FLAIR, T1, T1 contrast-enhanced, T2).
    """

    name: str
    labels: dict[int, str]
    regions: dict[str, tuple[int, ...]]
    modalities: tuple[str, str, str, str]

    def region_masks(self, segmentation: np.ndarray) -> np.ndarray:
        """Turn an integer label map into the three region masks.

        Args:
            segmentation: label map of shape ``(D, H, W)`` (any integer or integral float dtype).

        Returns:
            Boolean array ``(3, D, H, W)``: WT, TC, ET.
        """
        labels = np.rint(np.asarray(segmentation)).astype(np.int64, copy=False)
        return np.stack([np.isin(labels, self.regions[r]) for r in REGIONS])

    def unknown_labels(self, segmentation: np.ndarray) -> list[int]:
        """Label values present in ``segmentation`` that this convention does not define."""
        present = np.unique(np.rint(np.asarray(segmentation)).astype(np.int64, copy=False))
        return [int(v) for v in present if int(v) not in self.labels]

    def labels_from_regions(self, masks: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`region_masks` for nested masks (ET ⊆ TC ⊆ WT).

        Args:
            masks: boolean ``(3, D, H, W)`` WT, TC, ET masks.

        Returns:
            ``uint8`` label map ``(D, H, W)`` in this convention.
        """
        wt, tc, et = (np.asarray(m, dtype=bool) for m in masks)
        out = np.zeros(wt.shape, dtype=np.uint8)
        only = {
            "wt": wt & ~tc,
            "tc": tc & ~et,
            "et": et,
        }
        out[only["wt"]] = _single_label(self, "wt", exclude=self.regions["tc"])
        out[only["tc"]] = _single_label(self, "tc", exclude=self.regions["et"])
        out[only["et"]] = _single_label(self, "et", exclude=())
        return out


def _single_label(convention: LabelConvention, region: str, exclude: tuple[int, ...]) -> int:
    candidates = [v for v in convention.regions[region] if v not in exclude]
    return candidates[0]


CONVENTIONS: dict[str, LabelConvention] = {
    "brats2021": LabelConvention(
        name="brats2021",
        labels={0: "background", 1: "necrotic / non-enhancing core", 2: "peritumoral edema",
                4: "enhancing tumour"},
        regions={"wt": (1, 2, 4), "tc": (1, 4), "et": (4,)},
        modalities=("flair", "t1", "t1ce", "t2"),
    ),
    "brats2023": LabelConvention(
        name="brats2023",
        labels={0: "background", 1: "non-enhancing tumour core", 2: "surrounding FLAIR hyperintensity",
                3: "enhancing tumour"},
        regions={"wt": (1, 2, 3), "tc": (1, 3), "et": (3,)},
        modalities=("t2f", "t1n", "t1c", "t2w"),
    ),
    "brats2024": LabelConvention(
        name="brats2024",
        labels={0: "background", 1: "non-enhancing tumour core", 2: "surrounding FLAIR hyperintensity",
                3: "enhancing tumour", 4: "resection cavity"},
        regions={"wt": (1, 2, 3), "tc": (1, 3), "et": (3,)},
        modalities=("t2f", "t1n", "t1c", "t2w"),
    ),
    "msd": LabelConvention(
        name="msd",
        labels={0: "background", 1: "edema", 2: "non-enhancing tumour", 3: "enhancing tumour"},
        regions={"wt": (1, 2, 3), "tc": (2, 3), "et": (3,)},
        modalities=("FLAIR", "T1w", "t1gd", "T2w"),
    ),
}


def get_convention(name: str) -> LabelConvention:
    """Look a convention up by name.

    Raises:
        RevprofError: unknown name; the message lists the valid ones.
    """
    return CONVENTIONS[look_up("convention", name, CONVENTIONS)]


def label_regions(convention: LabelConvention, label: int) -> tuple[str, ...]:
    """The regions (of WT, TC, ET) that ``label`` belongs to in ``convention``."""
    return tuple(region for region in REGIONS if label in convention.regions[region])


def tell_convention(labels: Iterable[int], preferred: LabelConvention | None = None, *,
                    decathlon: bool = False, what: str = "labels") -> LabelConvention:
    """The convention a label map is in, told from the label values it holds.

    A file written by another tool may use another release's labels than the reference (ET = 3
    as BraTS 2023 writes it, against a 2018 reference with ET = 4). Rules, in order:

    1. labels that ``preferred`` defines are read in it (an empty or near-empty map too);
    2. else the conventions defining every label are the candidates (``msd`` only with
       ``decathlon``: the Decathlon's labels 1-3 mean other regions than BraTS 2023's); when they
       all put each label into the same regions, the first of them is the answer
       (``brats2023`` for labels 1-3: ``brats2024`` reads them alike);
    3. else the labels do not tell: labels 1, 2, 4 are BraTS 2017-2021's with ET = 4, or BraTS
       2024's with a resection cavity 4 outside every region.

    Args:
        labels: the label values present (0 included or not).
        preferred: the convention to read labels in when it defines them all (the reference's).
        decathlon: the file is named as a Decathlon case (``BRATS_001``).
        what: how to name the label map in messages (e.g. ``"prediction a.nii.gz"``).

    Raises:
        RevprofError: no convention defines the labels, or the candidates read them into
            different regions; the message names the labels and the readings.
    """
    present = sorted(int(v) for v in set(labels))
    if preferred is not None and all(v in preferred.labels for v in present):
        return preferred
    candidates = [c for name, c in CONVENTIONS.items()
                  if (decathlon or name != "msd") and all(v in c.labels for v in present)]
    shown = ", ".join(str(v) for v in present if v != 0) or "0 only"
    if not candidates:
        valid = "; ".join(f"{c.name}: {','.join(str(v) for v in c.labels)}"
                          for c in CONVENTIONS.values())
        raise RevprofError(f"{what} holds labels {shown}, which no convention defines ({valid})")
    readings = {c.name: tuple(label_regions(c, v) for v in present) for c in candidates}
    if len(set(readings.values())) == 1:
        return candidates[0]
    differ = [v for i, v in enumerate(present) if len({r[i] for r in readings.values()}) > 1]

    def where(name: str, value: int) -> str:
        regions = label_regions(CONVENTIONS[name], value)
        return f"{value} in {'/'.join(r.upper() for r in regions) or 'no region'}"

    words = "; ".join(f"{name}: {', '.join(where(name, v) for v in differ)}" for name in readings)
    raise RevprofError(f"{what} holds labels {shown}, which do not tell their convention ({words})")
