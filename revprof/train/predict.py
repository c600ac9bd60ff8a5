"""Segment cases with a saved network: load a ``--save-model`` checkpoint safely, preprocess each
case as training did, run sliding-window inference and write label maps in the original geometry.

The checkpoint is read with ``torch.load(weights_only=True)``: only tensors and plain containers
are unpickled, so a checkpoint from elsewhere cannot run code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from revprof.bounds import check_output_folder
from revprof.errors import RevprofError
from revprof.recipe import PAPER, Recipe, recipe_or_paper
from revprof.spec import PRECISIONS, ArchSpec, Precision, parse_patch, validate_patch
from revprof.train.settings import TrainSettings

if TYPE_CHECKING:
    from revprof.data.postprocess import Kept


@dataclass(frozen=True)
class Checkpoint:
    """A saved network: its spec, weights, the training patch / crop / precision, and the recipe
    it was trained with (the paper's for a checkpoint written before recipes existed)."""

    spec: ArchSpec
    state_dict: dict
    patch: tuple[int, int, int] | None
    crop: tuple[int, int, int] | None
    precision: Precision
    spacing: tuple[float, float, float] | None = (1.0, 1.0, 1.0)
    recipe: Recipe = PAPER


def _refusal(error: Exception) -> str:
    """Why ``torch.load`` refused a file, in one line and without PyTorch's advice to load it
    with ``weights_only=False``, which would run any code an untrusted file holds."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = [line for line in lines if not any(word in line for word in (
        "weights_only", "Weights only", "trusted source", "file an issue", "torch.load"))]
    return f"{type(error).__name__}: {detail[0][:200]}" if detail else type(error).__name__


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by ``revprof measure --steps N --save-model``.

    Raises:
        RevprofError: missing or unreadable file, or not a revprof checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise RevprofError(f"--model {path} does not exist; write one with revprof measure "
                           f"--steps N --save-model FILE")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of odd files
            warnings.simplefilter("ignore")
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights-only errors alike
        raise RevprofError(f"--model {path} is not a readable checkpoint ({_refusal(error)}); "
                           f"revprof reads only tensors and plain values from a checkpoint, "
                           f"never code") from None
    if not isinstance(raw, dict) or "spec" not in raw or "state_dict" not in raw:
        raise RevprofError(f"--model {path} is not a revprof checkpoint (no spec and state_dict)")
    return _checked(raw, f"--model {path}")


def _checked(raw: dict[str, Any], source: str) -> Checkpoint:
    """A checkpoint's fields, each checked as a spec file's are: the spec, a state dict of named
    tensors, the patch and crop (three sides of 1 to 1024 voxels), the spacing (three sizes of
    0.001 to 100 mm), the precision and the recipe.

    Raises:
        RevprofError: ``SOURCE: <field> ...`` in one line.
    """
    try:
        spec = ArchSpec.from_dict(raw["spec"])
    except RevprofError as error:
        raise RevprofError(f"{source}: spec: {error}") from None
    state = raw["state_dict"]
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise RevprofError(f"{source}: state_dict must map parameter names to tensors")
    # patch, crop and spacing: the checks (and bounds) of a spec file's training settings
    given = {key: raw[key] for key in ("patch", "crop", "spacing") if raw.get(key) is not None}
    if "patch" in given and not isinstance(given["patch"], (list, tuple)):
        raise RevprofError(f"{source}: patch must be three sides like [128, 128, 128]; got "
                           f"{str(given['patch'])[:40]!r}")
    settings = TrainSettings.from_dict(given, source=source)
    spacing = settings.spacing if raw.get("spacing") else (None if "spacing" in raw else (1.0, 1.0, 1.0))
    precision = raw.get("precision") or "fp32"
    if precision not in PRECISIONS:
        raise RevprofError(f"{source}: precision must be one of {', '.join(PRECISIONS)}; got "
                           f"{str(precision)[:40]!r}")
    recipe = (recipe_or_paper(raw.get("recipe"), source=f"{source}: recipe")
              if raw.get("recipe") is not None else PAPER.with_overrides({"precision": precision}))
    return Checkpoint(spec, state, settings.patch if "patch" in given else None, settings.crop,
                      recipe.precision, spacing, recipe)



@dataclass(frozen=True)
class Predicted:
    """One segmented case and where its label map went."""

    case: str
    path: Path
    shape: tuple[int, int, int]
    kept: Kept | None = None
    """With ``largest_component``: the tumour components found and the voxels removed."""


def predict_folder(model_path: Path, data: Path, out: Path, patch: str | None = None,
                   device: str = "auto", convention: str | None = None,
                   on_window: Callable[[str, int, int], None] | None = None,
                   largest_component: bool = False) -> list[Predicted]:
    """Segment every case under ``data`` (labelled or inference-only) with the checkpoint and
    write ``out/<case>.nii.gz`` in the case's original geometry and label convention.

    Args:
        patch: sliding-window size; default the checkpoint's training patch.
        largest_component: keep only the largest connected whole-tumour component (and the core
            and enhancing tumour inside it; :func:`revprof.data.postprocess.keep_largest_tumour`).
        on_window: ``(case, done, total)`` after each inference window (progress).

    Returns:
        one :class:`Predicted` per case, in case order.

    Raises:
        RevprofError: a bad checkpoint, patch or data folder, or a case file whose header's voxel
            size or affine is damaged (checked for every case before the first is written).
    """
    from revprof.data import PreprocessConfig, discover, load_case, preprocess_case
    from revprof.data.conventions import get_convention
    from revprof.data.nifti import open_nifti
    from revprof.data.postprocess import keep_largest_tumour
    from revprof.data.preprocess import restore_masks
    from revprof.nn import build_model
    from revprof.train.infer import predict_volume
    from revprof.environment import resolve_device
    from revprof.train.run import PreparedData, default_crop, write_predictions

    check_output_folder(out, "--out", example="predictions/")
    checkpoint = load_checkpoint(model_path)
    window = parse_patch(patch) if patch is not None else checkpoint.patch
    if window is None:
        raise RevprofError(f"--model {model_path} does not record its training patch; give --patch")
    window = validate_patch(checkpoint.spec, window)
    data = Path(data)
    if not data.is_dir():
        raise RevprofError(f"--data {data} does not exist or is not a folder")
    cases = discover(data, convention=convention).cases
    if not cases:
        raise RevprofError(f"--data {data} holds no BraTS case (revprof data check {data} says why)")
    for case in cases:  # a damaged header stops the run before anything is written
        for path in case.files:
            open_nifti(path, case.case_id)
    where = resolve_device(device)
    model = build_model(checkpoint.spec)
    try:
        model.load_state_dict(checkpoint.state_dict)
    except RuntimeError as error:
        raise RevprofError(f"--model {model_path}: weights do not fit its spec "
                           f"({str(error).splitlines()[0][:200]})") from None
    model.to(where).eval()
    results = []
    for case in cases:
        loaded = load_case(case, with_labels=False)
        crop = checkpoint.crop if checkpoint.crop is not None else default_crop(loaded.image.shape[1:])
        pre = preprocess_case(loaded, PreprocessConfig(size=crop, spacing=checkpoint.spacing))
        report = None if on_window is None else (
            lambda done, total, name=case.case_id: on_window(name, done, total))
        probs = predict_volume(model, pre.image, window, checkpoint.spec.levels, where,
                               checkpoint.precision, on_window=report)
        masks = restore_masks(probs, pre)
        kept = keep_largest_tumour(masks) if largest_component else None
        labels = get_convention(pre.convention).labels_from_regions(kept.masks if kept else masks)
        (path,) = write_predictions({case.case_id: labels}, PreparedData(data, [], [pre], {}), out)
        results.append(Predicted(case.case_id, path, tuple(loaded.image.shape[1:]), kept))
    return results
