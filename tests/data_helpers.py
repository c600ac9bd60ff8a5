"""Shared helpers for the data-module tests: tiny NIfTI cases in each release layout."""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SHAPE = (12, 10, 8)
"""A deliberately non-cubic, non-BraTS shape."""

REAL_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples"

OLD_MODS = ("flair", "t1", "t1ce", "t2")
NEW_MODS = ("t2f", "t1n", "t1c", "t2w")


def real_samples() -> Path:
    """The real-sample folder; skip when absent, except under CI where it must exist."""
    if not REAL_SAMPLES.is_dir():
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"real samples missing at {REAL_SAMPLES} (required when CI=true)")
        pytest.skip(f"real samples not found at {REAL_SAMPLES}")
    return REAL_SAMPLES


def write_nii(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Save ``array`` as NIfTI (``.nii`` or ``.nii.gz`` from the name) with its own dtype."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else affine)
    image.header.set_data_dtype(np.asarray(array).dtype)
    nib.save(image, os.fspath(path))
    return path


def brain_images(shape: Sequence[int] = SHAPE, seed: int = 0) -> np.ndarray:
    """int16 ``(4, *shape)``: distinct positive values in a box, zero border (the 'background')."""
    rng = np.random.default_rng(seed)
    image = np.zeros((4, *shape), dtype=np.int16)
    inner = (slice(None),) + tuple(slice(1, s - 1) for s in shape)
    image[inner] = rng.integers(50, 1000, size=image[inner].shape).astype(np.int16)
    for c in range(4):  # make channels distinguishable: channel c + 1 thousands
        image[c][image[c] > 0] += (c + 1) * 1000
    return image


def label_map(values: Sequence[int], shape: Sequence[int] = SHAPE) -> np.ndarray:
    """uint8 map with ``values[i]`` at voxel ``(i + 2, 3, 3)`` and 0 elsewhere."""
    seg = np.zeros(shape, dtype=np.uint8)
    for i, v in enumerate(values):
        seg[i + 2, 3, 3] = v
    return seg


def make_old_case(parent: Path, case_id: str, seg: np.ndarray | None, *, ext: str = ".nii.gz",
                  shape: Sequence[int] = SHAPE, seed: int = 0, skip: Sequence[str] = (),
                  seg_name: str | None = None) -> Path:
    """A BraTS 2017-2021 case folder ``parent/case_id``."""
    folder = parent / case_id
    images = brain_images(shape, seed)
    for c, mod in enumerate(OLD_MODS):
        if mod not in skip:
            write_nii(folder / f"{case_id}_{mod}{ext}", images[c])
    if seg is not None:
        write_nii(folder / (seg_name or f"{case_id}_seg{ext}"), seg)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make_new_case(parent: Path, case_id: str, seg: np.ndarray | None, *, ext: str = ".nii.gz",
                  shape: Sequence[int] = SHAPE, seed: int = 0) -> Path:
    """A BraTS 2023+ case folder ``parent/case_id``."""
    folder = parent / case_id
    images = brain_images(shape, seed)
    for c, mod in enumerate(NEW_MODS):
        write_nii(folder / f"{case_id}-{mod}{ext}", images[c])
    if seg is not None:
        write_nii(folder / f"{case_id}-seg{ext}", seg)
    return folder


def make_msd(root: Path, train: dict[str, np.ndarray], test: Sequence[str] = (),
             shape: Sequence[int] = SHAPE) -> Path:
    """A Decathlon Task01 folder with 4-D ``(H, W, D, 4)`` images."""
    for i, (case_id, seg) in enumerate(sorted(train.items())):
        image = np.moveaxis(brain_images(shape, i), 0, -1)
        write_nii(root / "imagesTr" / f"{case_id}.nii.gz", image)
        write_nii(root / "labelsTr" / f"{case_id}.nii.gz", seg)
    for i, case_id in enumerate(test):
        write_nii(root / "imagesTs" / f"{case_id}.nii.gz", np.moveaxis(brain_images(shape, 100 + i), 0, -1))
    (root / "dataset.json").write_text("{}\n")
    return root


HEADER_DAMAGE = ("nan-zooms", "singular-affine")
"""The damaged NIfTI headers of issue 26, as :func:`damage_header` writes them."""


def damage_header(path: Path, kind: str) -> Path:
    """Rewrite the header of the NIfTI file ``path`` in place (its voxels untouched).

    ``nan-zooms``: the voxel size (pixdim) is NaN and the affine comes from the qform built on
    it (NaN too); ``singular-affine``: an all-zero sform is the affine. nibabel refuses to
    *write* either through its API, so the 348 header bytes are patched directly.
    """
    raw = path.read_bytes()
    packed = path.name.endswith(".gz")
    if packed:
        raw = gzip.decompress(raw)
    header = nib.Nifti1Header(raw[:348], check=False)
    if kind == "nan-zooms":
        pixdim = header["pixdim"].copy()
        pixdim[1:4] = np.nan
        header["pixdim"] = pixdim
        header["sform_code"], header["qform_code"] = 0, 1
    elif kind == "singular-affine":
        for row in ("srow_x", "srow_y", "srow_z"):
            header[row] = np.zeros(4)
        header["sform_code"], header["qform_code"] = 1, 0
    else:
        raise ValueError(f"unknown header damage {kind!r}; one of {HEADER_DAMAGE}")
    raw = header.binaryblock + raw[348:]
    path.write_bytes(gzip.compress(raw) if packed else raw)
    return path
