"""Synthetic BraTS-format cases: a head phantom with tumours, written in the release layouts.

Each case is an ellipsoidal, skull-stripped brain (zero background) with white matter, a folded
grey-matter ribbon, an outer CSF rim and two ventricles, holding one to three tumours made of
peritumoural oedema, a necrotic core and an enhancing rim (bright on T1ce), all shaped by smooth
random deformations. Each modality (FLAIR, T1, T1ce, T2) has its own tissue contrasts, a smooth
multiplicative bias field and Rician noise. Images are int16, segmentations uint8, voxels 1 mm.

Everything is drawn from ``numpy.random.default_rng([seed, index])``: one case depends only on
the seed and its index.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from revprof.bounds import MAX_SYNTHETIC_CASES, check_int, check_output_folder, check_seed, replace_file
from revprof.data.conventions import get_convention
from revprof.errors import RevprofError, look_up
from revprof.spec import parse_int_list

SYNTH_CONVENTIONS: tuple[str, ...] = ("brats2021", "brats2023", "msd")
"""Release layouts :func:`synthesize` can write."""

DEFAULT_SHAPE: tuple[int, int, int] = (240, 240, 155)
MIN_SIDE = 16
MAX_SIDE = 1024

# Tissue classes of the phantom's semantic map.
_WM, _GM, _CSF, _ED, _NCR, _ET = range(6)
# Mean intensity of each class in FLAIR, T1, T1ce, T2 (rows: modality; columns: class above).
_CONTRAST = np.array([
    #  WM    GM   CSF    ED   NCR    ET
    [420, 540, 110, 930, 380, 760],   # FLAIR: CSF suppressed, oedema bright
    [860, 610, 240, 540, 290, 600],   # T1: WM > GM > CSF, tumour dark
    [870, 630, 260, 570, 310, 1550],  # T1ce: enhancing rim bright
    [460, 700, 1650, 1250, 1500, 880],  # T2: fluid bright
], dtype=np.float32)


def parse_shape(text: str) -> tuple[int, int, int]:
    """Parse ``"240,240,155"`` (or ``240x240x155``) into a volume shape.

    Raises:
        RevprofError: not three integers in ``MIN_SIDE..MAX_SIDE``.
    """
    parts = [p for p in re.split(r"[,x×\s]+", text.strip()) if p]
    values = tuple(parse_int_list("shape", parts, "240,240,155"))
    if len(values) != 3:
        raise RevprofError(
            f"shape must be three integers like 240,240,155; got {text!r} ({len(values)} values)"
        )
    if any(v < MIN_SIDE or v > MAX_SIDE for v in values):
        raise RevprofError(
            f"every side of shape must lie in {MIN_SIDE}..{MAX_SIDE}; got {text!r}"
        )
    return values


def brats_affine(shape: Sequence[int]) -> np.ndarray:
    """The 1 mm affine of the BraTS releases (LPS-flipped x and y), for ``shape``."""
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[1, 3] = float(shape[1] - 1)
    return affine


@dataclass
class SyntheticCase:
    """A phantom before it is written.

    Attributes:
        image: int16 ``(4, D, H, W)`` FLAIR, T1, T1ce, T2.
        tissue: uint8 ``(D, H, W)`` tumour classes: 0 none, 1 necrotic core, 2 oedema, 3 enhancing.
    """

    image: np.ndarray
    tissue: np.ndarray

    def labels(self, convention: str) -> np.ndarray:
        """uint8 label map ``(D, H, W)`` in ``convention``."""
        wt = self.tissue > 0
        tc = (self.tissue == 1) | (self.tissue == 3)
        et = self.tissue == 3
        return get_convention(convention).labels_from_regions(np.stack([wt, tc, et]))


def _axis(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n, dtype=np.float32)


def _smooth_field(
    shape: Sequence[int], rng: np.random.Generator, terms: int, low: float, high: float,
    origin: Sequence[float] = (0.0, 0.0, 0.0), extent: Sequence[float] | None = None,
) -> np.ndarray:
    """A smooth random field in about [-1, 1]: a sum of separable products of cosines.

    ``low``/``high`` bound the frequencies in cycles over the unit extent; ``origin``/``extent``
    place a sub-block inside the unit cube (for fields that must agree across blocks).
    """
    extent = extent or (1.0, 1.0, 1.0)
    coords = [origin[i] + extent[i] * _axis(int(shape[i])) for i in range(3)]
    field = np.zeros(tuple(int(s) for s in shape), dtype=np.float32)
    total = 0.0
    for _ in range(terms):
        weight = float(rng.uniform(0.5, 1.0))
        factors = []
        for i in range(3):
            freq = rng.uniform(low, high)
            phase = rng.uniform(0, 2 * np.pi)
            factors.append(np.cos(2 * np.pi * freq * coords[i] + phase).astype(np.float32))
        field += weight * (factors[0][:, None, None] * factors[1][None, :, None]
                           * factors[2][None, None, :])
        total += weight
    return field / np.float32(max(total, 1e-6) ** 0.5 * 1.2)


def _ellipsoid_radius(shape: Sequence[int] | np.ndarray, centre: Sequence[float] | np.ndarray,
                      semi: Sequence[float] | np.ndarray) -> np.ndarray:
    axes = [((np.arange(int(n), dtype=np.float32) - c) / s) ** 2
            for n, c, s in zip(shape, centre, semi)]
    return np.sqrt(axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :])


def make_phantom(shape: Sequence[int], rng: np.random.Generator) -> SyntheticCase:
    """Draw one phantom of ``shape`` (see the module docstring)."""
    shape = tuple(int(s) for s in shape)
    dims = np.array(shape, dtype=np.float32)
    centre = dims / 2 + rng.uniform(-0.03, 0.03, 3).astype(np.float32) * dims
    semi = dims * np.array([0.31, 0.37, 0.42], dtype=np.float32) * rng.uniform(0.92, 1.05, 3).astype(np.float32)

    # Brain outline: a deformed ellipsoid; r < 1 inside.
    r = _ellipsoid_radius(shape, centre, semi)
    r *= 1.0 + 0.05 * _smooth_field(shape, rng, 3, 0.5, 1.5)
    brain = r < 1.0

    # Grey-matter ribbon with folds between the WM core and an outer CSF rim.
    gm_edge = 0.80 + 0.08 * _smooth_field(shape, rng, 5, 3.0, 9.0)
    csf = np.clip((r - 0.93) / 0.04, 0.0, 1.0)
    wm = np.clip((gm_edge - r) / 0.03, 0.0, 1.0)
    del gm_edge

    # Two ventricles beside the midline.
    for side in (-1.0, 1.0):
        vc = centre + np.array([side * 0.11, 0.02, 0.08], dtype=np.float32) * semi
        vs = semi * np.array([0.07, 0.30, 0.16], dtype=np.float32) * rng.uniform(0.8, 1.2, 3).astype(np.float32)
        lo = np.maximum(np.floor(vc - 1.3 * vs).astype(int), 0)
        hi = np.minimum(np.ceil(vc + 1.3 * vs).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        block = tuple(slice(a, b) for a, b in zip(lo, hi))
        rv = _ellipsoid_radius(hi - lo, vc - lo, vs)
        vent = np.clip((1.0 - rv) / 0.15, 0.0, 1.0)
        csf[block] = np.maximum(csf[block], vent)
        wm[block] *= 1.0 - vent
    gm = np.clip(1.0 - wm - csf, 0.0, 1.0)
    del r

    # Tumours: core (necrosis + enhancing rim) inside oedema, restricted to brain tissue.
    tissue = np.zeros(shape, dtype=np.uint8)
    for _ in range(int(rng.choice([1, 1, 1, 2, 2, 3]))):
        _add_tumour(tissue, brain, csf, centre, semi, rng)

    # Intensities per modality.
    texture = _smooth_field(shape, rng, 3, 3.0, 8.0)
    gains = rng.uniform(0.8, 1.25, 4).astype(np.float32)
    inside = np.flatnonzero(brain)
    image = np.zeros((4,) + shape, dtype=np.int16)
    classes = tissue.reshape(-1)[inside]
    for m in range(4):
        c = _CONTRAST[m]
        values = (wm.reshape(-1)[inside] * c[_WM] + gm.reshape(-1)[inside] * c[_GM]
                  + csf.reshape(-1)[inside] * c[_CSF])
        tumour_values = np.array([0.0, c[_NCR], c[_ED], c[_ET]], dtype=np.float32)
        in_tumour = classes > 0
        # Oedema keeps a trace of the underlying tissue; the core replaces it.
        mix = np.where(classes == 2, 0.75, 1.0).astype(np.float32)[in_tumour]
        values[in_tumour] = mix * tumour_values[classes[in_tumour]] + (1 - mix) * values[in_tumour]
        values *= 1.0 + 0.04 * texture.reshape(-1)[inside]
        bias = np.exp(0.18 * _smooth_field(shape, rng, 2, 0.3, 1.2)).reshape(-1)[inside]
        values *= bias * gains[m]
        sigma = 0.03 * c[_WM] * gains[m]
        noisy_re = values + sigma * rng.standard_normal(values.shape[0], dtype=np.float32)
        noisy_im = sigma * rng.standard_normal(values.shape[0], dtype=np.float32)
        values = np.sqrt(noisy_re * noisy_re + noisy_im * noisy_im)
        flat = image[m].reshape(-1)
        flat[inside] = np.clip(np.rint(values), 1, 32767).astype(np.int16)
    return SyntheticCase(image=image, tissue=tissue)


def _add_tumour(tissue: np.ndarray, brain: np.ndarray, csf: np.ndarray, centre: np.ndarray,
                semi: np.ndarray, rng: np.random.Generator) -> None:
    shape = np.array(tissue.shape)
    # Centre: inside the deep brain (normalised radius below 0.55), off the midline.
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction) + 1e-9
    radius_frac = rng.uniform(0.2, 0.55)
    t_centre = centre + direction * radius_frac * semi
    core = float(rng.uniform(0.10, 0.24)) * float(semi.mean())
    core_semi = core * rng.uniform(0.8, 1.25, 3)
    edema_scale = float(rng.uniform(1.5, 2.3))
    reach = core_semi * edema_scale * 1.35
    lo = np.maximum(np.floor(t_centre - reach).astype(int), 0)
    hi = np.minimum(np.ceil(t_centre + reach).astype(int) + 1, shape)
    if np.any(hi - lo < 2):
        return
    block = tuple(slice(a, b) for a, b in zip(lo, hi))
    d = _ellipsoid_radius(hi - lo, t_centre - lo, core_semi)
    d_core = d * (1.0 + 0.22 * _smooth_field(hi - lo, rng, 3, 0.7, 2.0))
    d_edema = d * (1.0 + 0.35 * _smooth_field(hi - lo, rng, 4, 0.7, 2.5))
    allowed = brain[block] & (csf[block] < 0.5)
    kind = rng.uniform()
    necrosis = 0.0 if kind < 0.25 else float(rng.uniform(0.35, 0.65))
    enhancing = kind >= 0.12  # a few tumours do not enhance
    local = tissue[block]
    edema = allowed & (d_edema < edema_scale) & (local == 0)
    local[edema] = 2
    in_core = allowed & (d_core < 1.0)
    if enhancing:
        local[in_core] = 3
        local[in_core & (d_core < necrosis)] = 1
    else:
        local[in_core] = 1


def _write(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write one NIfTI through a hidden temporary file renamed into place: a killed or
    interrupted run, or a full disk, leaves no file under ``path`` but a whole one."""
    image = nib.Nifti1Image(array, affine)
    image.header.set_data_dtype(array.dtype)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=2)
    image.set_sform(affine, code=1)
    replace_file(path, lambda temporary: nib.save(image, os.fspath(temporary)), suffix=".nii.gz",
                 name=str(path))


# Case-folder releases: the case id pattern and the separator before the modality name.
_CASE_FOLDER_NAMING = {
    "brats2021": ("BraTS2021_{:05d}", "_"),
    "brats2023": ("BraTS-GLI-{:05d}-000", "-"),
}


def write_case(case: SyntheticCase, out_dir: Path, index: int, convention: str) -> Path:
    """Write one phantom in ``convention``'s release layout; return the case folder (or MSD image)."""
    shape = case.image.shape[1:]
    affine = brats_affine(shape)
    labels = case.labels(convention)
    if convention in _CASE_FOLDER_NAMING:  # one folder per case, one file per modality
        pattern, separator = _CASE_FOLDER_NAMING[convention]
        case_id = pattern.format(index)
        folder = out_dir / case_id
        folder.mkdir(parents=True, exist_ok=True)
        for m, name in enumerate(get_convention(convention).modalities):
            _write(case.image[m], affine, folder / f"{case_id}{separator}{name}.nii.gz")
        _write(labels, affine, folder / f"{case_id}{separator}seg.nii.gz")
        return folder
    # Medical Segmentation Decathlon: one 4-D (H, W, D, 4) file per case.
    name = f"BRATS_{index + 1:03d}.nii.gz"
    (out_dir / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out_dir / "labelsTr").mkdir(parents=True, exist_ok=True)
    _write(np.ascontiguousarray(np.moveaxis(case.image, 0, -1)), affine, out_dir / "imagesTr" / name)
    _write(labels, affine, out_dir / "labelsTr" / name)
    return out_dir / "imagesTr" / name


def _write_msd_json(out_dir: Path) -> None:
    conv = get_convention("msd")
    names = sorted(p.name for p in (out_dir / "imagesTr").glob("BRATS_*.nii.gz"))
    data = {
        "name": "BRATS",
        "description": "Synthetic gliomas written by revprof in the Decathlon Task01 layout",
        "tensorImageSize": "4D",
        "modality": {str(i): m for i, m in enumerate(conv.modalities)},
        "labels": {str(k): v for k, v in conv.labels.items()},
        "numTraining": len(names),
        "numTest": 0,
        "training": [{"image": f"./imagesTr/{n}", "label": f"./labelsTr/{n}"} for n in names],
        "test": [],
    }
    replace_file(out_dir / "dataset.json", json.dumps(data, indent=2) + "\n",
                 name=str(out_dir / "dataset.json"))


def _refuse_non_empty(out: Path, cases: int, convention: str) -> None:
    """Raise when ``out`` holds anything: real cases must never be overwritten by phantoms."""
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if convention in _CASE_FOLDER_NAMING:
        ids = {_CASE_FOLDER_NAMING[convention][0].format(i) for i in range(cases)}
    else:
        ids = {"imagesTr", "labelsTr", "dataset.json"}
    clash = [e for e in entries if e in ids]
    detail = (f"{len(clash)} of them case(s) this would replace, such as {clash[0]}" if clash
              else f"such as {entries[0]}")
    raise RevprofError(f"output folder {out} is not empty ({len(entries)} entries, {detail}); "
                       f"give an empty or new folder, or --force to write into it")


def synthesize(
    out_dir: str | os.PathLike[str],
    cases: int,
    shape: Sequence[int] = DEFAULT_SHAPE,
    convention: str = "brats2021",
    seed: int = 0,
    progress: Callable[[int, Path], None] | None = None,
    force: bool = False,
) -> list[Path]:
    """Write ``cases`` synthetic cases under ``out_dir`` in a release layout.

    Args:
        out_dir: destination folder (created); it must be empty unless ``force``.
        cases: number of cases.
        shape: volume shape ``(D, H, W)``.
        convention: ``brats2021`` (BraTS 2017–2021 names and labels), ``brats2023`` or ``msd``
            (Decathlon Task01 layout with ``dataset.json``).
        seed: case ``i`` is drawn from ``numpy.random.default_rng([seed, i])``.
        progress: called as ``progress(i, path)`` after each written case.
        force: write into a folder that already holds files (cases of the same id are replaced).

    Returns:
        The written case folders (for ``msd``, the ``imagesTr`` image files).

    Raises:
        RevprofError: bad count, shape or convention; a non-empty folder without ``force``.
    """
    look_up("convention", convention, SYNTH_CONVENTIONS)
    check_int("number of cases", cases, 1, MAX_SYNTHETIC_CASES)
    check_seed(seed, "seed")
    shape = parse_shape(",".join(str(s) for s in shape))
    out = check_output_folder(out_dir, "output folder", example="data/synthetic")
    if out.is_dir() and not force:
        _refuse_non_empty(out, cases, convention)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RevprofError(f"cannot create output folder {out}: {error.strerror or error}") from None
    written = []
    for i in range(cases):
        phantom = make_phantom(shape, np.random.default_rng([seed, i]))
        try:
            path = write_case(phantom, out, i, convention)
        except OSError as error:  # a case folder that cannot be created
            raise RevprofError(f"cannot write case {i} under {out}: {error.strerror or error}") from None
        written.append(path)
        if progress is not None:
            progress(i, path)
    if convention == "msd":
        _write_msd_json(out)
    return written


__all__ = [
    "DEFAULT_SHAPE", "SYNTH_CONVENTIONS", "SyntheticCase", "brats_affine", "make_phantom",
    "parse_shape", "synthesize", "write_case",
]
