"""A short BraTS training run: the accuracy side of the accuracy–memory trade-off.

Trains a spec with a recipe (default the paper's: batch 1, random patches with flips, Adam lr 1e-4
and weight decay 1e-5, soft Dice loss over WT/TC/ET; see :mod:`revprof.recipe`), measures memory
and speed during the real run, and scores Dice on held-out cases exactly as ``revprof evaluate``
does: on the original grid, with the nested regions of the saved label maps, with the same
function.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from revprof.bounds import replace_file
from revprof.errors import RevprofError
from revprof.interrupts import held_interrupts
from revprof.environment import environment, resolve_device
from revprof.memory.measure import cuda_measurement, measure_memory, oom_record, warm_up_cuda
from revprof.memory.tracker import StorageTracker
from revprof.nn import build_model
from revprof.nn.unet import UNet3D
from revprof.recipe import Recipe
from revprof.spec import ArchSpec, Precision, validate_patch
from revprof.step import Batch, TrainingStep
from revprof.train.demo_data import demo_dataset
from revprof.train.infer import predict_volume
from revprof.train.settings import CaseDice, TrainResult, TrainSettings

if TYPE_CHECKING:
    from revprof.data import PatchSampler


@dataclass
class PreparedData:
    """Preprocessed training and validation cases."""

    root: Path
    train: list
    validation: list
    cases: dict  # case id -> revprof.data.Case
    crop: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class CaseSelection:
    """The cases of a run before preprocessing: the folder, the split and the crop."""

    root: Path
    train: list  # revprof.data.Case, sorted by case id
    validation: list
    crop: tuple[int, int, int] | None


def select_cases(settings: TrainSettings) -> CaseSelection:
    """Discover and split by patient the labelled cases of ``settings.data`` (or the synthetic
    demo cases), and choose the crop: the one place a run decides which cases it uses.

    Raises:
        RevprofError: the folder does not exist, or has too few labelled cases.
    """
    from revprof.data import discover, split_by_patient

    root = settings.data or demo_dataset(settings.synthetic_cases, settings.synthetic_shape, settings.seed)
    root = Path(root)
    if not root.exists():
        raise RevprofError(f"data folder {root} does not exist")
    index = discover(root, convention=settings.convention)
    labelled = [c for c in index.cases if c.seg is not None]
    if len(labelled) < settings.val_cases + 1 or not labelled:
        raise RevprofError(f"{root} has {len(labelled)} labelled case(s); a run needs at least "
                           f"val_cases + 1 = {settings.val_cases + 1}")
    train_cases, val_cases = (split_by_patient(labelled, settings.val_cases, seed=settings.seed)
                              if settings.val_cases else (labelled, []))
    crop = settings.crop
    if crop is None:
        from revprof.data import load_case

        crop = default_crop(load_case(labelled[0], with_labels=False).image.shape[1:])
    return CaseSelection(root, list(train_cases), list(val_cases), crop)


def default_crop(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """The crop of volumes of spatial ``shape`` when none is set: the paper's 160×192×160 when
    they are at least that large, else ``None`` (the brain's bounding box, synthetic data)."""
    from revprof.data import PAPER_SIZE

    return PAPER_SIZE if all(s >= p for s, p in zip(shape, PAPER_SIZE)) else None


def prepare_data(settings: TrainSettings, cache_dir: Path | None = None) -> PreparedData:
    """Discover, split by patient and preprocess (cached) the cases of ``settings.data``.

    Raises:
        RevprofError: no usable labelled cases, or too few to hold out ``val_cases``.
    """
    from revprof.data import PreprocessCache, PreprocessConfig

    chosen = select_cases(settings)
    cache = PreprocessCache(cache_dir, PreprocessConfig(size=chosen.crop, spacing=settings.spacing))
    return PreparedData(chosen.root, [cache.get(c) for c in chosen.train],
                        [cache.get(c) for c in chosen.validation],
                        {c.case_id: c for c in chosen.train + chosen.validation}, chosen.crop)


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), disable=not enabled,
                    transient=False)


def evaluate_cases(model: UNet3D, spec: ArchSpec, cases: list, patch: tuple[int, int, int],
                   device: torch.device, precision: Precision,
                   sources: dict, on_window: Callable[[int, int, int], None] | None = None,
                   ) -> tuple[list[CaseDice], dict[str, np.ndarray]]:
    """Dice per region of each validation case, exactly as ``revprof evaluate`` scores it.

    The prediction (threshold 0.5) is restored to the case's original grid and nested
    (:func:`revprof.data.preprocess.restore_labels`, the label map ``--save-predictions``
    writes) and compared with the case's reference label map by the function ``evaluate`` uses
    (:func:`revprof.evaluation.evaluate.region_dice_of_labels`).

    Args:
        cases: preprocessed validation cases.
        sources: case id → :class:`revprof.data.Case` (where the reference labels are read).

        on_window: ``(case_index, done, total)`` after each inference window (progress).

    Returns:
        ``(scores, label maps on the original grid by case id)``.
    """
    from revprof.data import get_convention
    from revprof.data.nifti import load_labels
    from revprof.data.preprocess import restore_labels
    from revprof.evaluation.evaluate import empty_reference_regions, region_dice_of_labels

    scores, labels = [], {}
    for index, case in enumerate(cases):
        report = None if on_window is None else (lambda done, total, i=index: on_window(i, done, total))
        probs = predict_volume(model, case.image, patch, spec.levels, device, precision,
                               on_window=report)
        predicted = restore_labels(probs, case)
        reference = load_labels(sources[case.case_id])
        convention = get_convention(case.convention)
        dice = region_dice_of_labels(predicted, reference, convention)
        scores.append(CaseDice(case.case_id, dice["wt"], dice["tc"], dice["et"],
                               empty=empty_reference_regions(reference, convention)))
        labels[case.case_id] = predicted
    return scores, labels


def mean_dice(scores: list[CaseDice]) -> dict[str, float] | None:
    """Mean Dice per region over cases and the mean of the three (``None`` without cases)."""
    if not scores:
        return None
    means = {r: float(np.mean([getattr(s, r) for s in scores])) for r in ("wt", "tc", "et")}
    means["mean"] = float(np.mean(list(means.values())))
    return means


def run_training(spec: ArchSpec, settings: TrainSettings, progress: bool = True,
                 save_model: Path | None = None, save_predictions: Path | None = None,
                 cache_dir: Path | None = None, score: bool = True,
                 on_progress: Callable[[str, int, int, float | None], None] | None = None,
                 ) -> TrainResult:
    """Train ``spec`` for ``settings.recipe.steps`` optimizer steps and score it on the held-out
    cases (``score=False``: train and measure only; ``dice`` is then ``None``).

    Each step is :class:`revprof.step.TrainingStep` with the recipe: the same step memory is
    measured with, on patches sampled by :class:`revprof.data.PatchSampler` (``recipe.batch`` per
    micro-batch, ``recipe.foreground`` of them around tumour), the learning rate following
    ``recipe.schedule``.

    ``progress`` shows a bar with the loss and the time left for the steps and then for the
    validation windows; ``on_progress(phase, done, total, loss)`` (phase ``train`` or
    ``validate``, loss ``None`` while validating) is called after every step and window.

    Out-of-memory and a non-finite loss are results (``status`` ``oom`` / ``diverged``), not
    exceptions. On the CPU, memory is the tracked figure (CUDA rounding, as ``--backend cpu``);
    on CUDA, ``max_memory_allocated``.

    Raises:
        RevprofError: bad settings or data, or a recipe the network cannot train with.
    """
    recipe = settings.recipe
    patch = validate_patch(spec, settings.patch)
    spec.checked(patch, recipe.batch, recipe.targets)
    device = resolve_device(settings.device)
    data = prepare_data(settings, cache_dir)
    predicted = measure_memory(spec, patch, recipe, backend="simulate").peak_bytes

    from revprof.data import PatchSampler

    torch.manual_seed(settings.seed)
    model = build_model(spec)
    losses: list[float] = []
    durations: list[float] = []
    status, error, oom = "ok", None, None
    tracker = StorageTracker() if device.type == "cpu" else None
    batches: list[Batch] = []
    with held_interrupts() as checkpoint, _progress(progress) as bar, \
            cuda_measurement(device) as cudnn_settings:
        task = bar.add_task(f"training {spec.describe()}", total=recipe.steps, loss="-")
        try:
            model = model.to(device)
            runner = TrainingStep(model, recipe, spec.output_kind, device.type)
            scheduler = runner.schedule()
            sampler = PatchSampler(data.train, patch, seed=settings.seed, foreground=recipe.foreground,
                                   intensity=recipe.intensity, spatial=recipe.spatial)
            if device.type == "cuda":  # as ``measure --backend cuda``: same warm-up and reset
                warm_up_cuda(device)
            for step in range(recipe.steps):
                checkpoint()  # Ctrl-C stops between steps
                batches = [Batch(*_sampled(sampler, recipe)) for _ in range(recipe.accumulate)]
                if recipe.transfer == "resident":
                    batches = [b.to(device) for b in batches]
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
                with tracker if tracker is not None else nullcontext():
                    if tracker is not None and step == 0:
                        tracker.register([*model.parameters()])
                    if tracker is not None and recipe.transfer == "resident":
                        tracker.register([t for b in batches for t in b.tensors()])
                    loss = runner(batches, step, device=device)
                    value = float(loss)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # before reading the time
                durations.append(time.perf_counter() - started)
                scheduler.step()
                losses.append(value)
                bar.update(task, advance=1, loss=f"{value:.4f}")
                if on_progress is not None:
                    on_progress("train", step + 1, recipe.steps, value)
                if not math.isfinite(value):
                    status, error = "diverged", f"loss became {value} at step {step + 1}"
                    break
            runner.release()
        except torch.OutOfMemoryError as out_of_memory:
            oom = oom_record(out_of_memory, device)
            status, error = "oom", _oom_words(oom)
        env = {**environment(str(device)), **cudnn_settings}
    del batches
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = tracker.peak.bytes if tracker is not None and tracker.peak else 0
    timed = durations[1:] or durations
    seconds = float(np.median(timed)) if timed else float("nan")
    voxels = recipe.batch * recipe.accumulate * math.prod(patch)
    scores: list[CaseDice] = []
    if status == "ok" and score:
        try:
            with held_interrupts(), _progress(progress) as bar:
                tasks = [bar.add_task(f"validating {case.case_id}", total=None, loss="-")
                         for case in data.validation]

                def window(index: int, done: int, total: int) -> None:
                    bar.update(tasks[index], completed=done, total=total)
                    if on_progress is not None:
                        on_progress("validate", done, total, None)

                scores, labels = evaluate_cases(model, spec, data.validation, patch, device,
                                                recipe.precision, data.cases, on_window=window)
        except torch.OutOfMemoryError as out_of_memory:  # validation inference ran out
            oom = oom_record(out_of_memory, device)
            status, error, scores = "oom", "during validation: " + _oom_words(oom), []
    unsaved: list[str] = []  # the run is a result even when writing its outputs fails
    if save_predictions is not None and status == "ok" and score:
        try:
            write_predictions(labels, data, save_predictions)
        except RevprofError as failure:
            unsaved.append(str(failure))
    if save_model is not None and status != "ok":  # NaN or half-trained weights are no network
        unsaved.append(f"--save-model {save_model} was not written: the run ended {status} "
                       f"({error}), so its weights are not a trained network")
    elif save_model is not None:
        try:
            save_checkpoint(model, spec, save_model, patch=patch, crop=data.crop, recipe=recipe,
                            spacing=settings.spacing)
        except RevprofError as failure:
            unsaved.append(str(failure))
    result = TrainResult(
        status=status, dice=mean_dice(scores), dice_per_case=scores, peak_bytes=int(peak),
        predicted_peak_bytes=int(predicted), seconds_per_step=seconds,
        voxels_per_second=voxels / seconds if seconds and math.isfinite(seconds) else float("nan"),
        losses=losses, device=_device_words(device), steps_done=len(losses),
        train_cases=len(data.train), val_cases=len(data.validation),
        environment=env, error=error, oom=oom,
    )
    if unsaved:
        raise OutputsNotSaved("; ".join(unsaved), result)
    return result


class OutputsNotSaved(RevprofError):
    """Training finished but its model or predictions could not be written; ``result`` holds the
    run, so the caller can still record it."""

    def __init__(self, message: str, result: TrainResult) -> None:
        super().__init__(message)
        self.result = result


def _sampled(sampler: PatchSampler, recipe: Recipe) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``recipe.batch`` patches ``(B, 4, D, H, W)`` and their region masks ``(B, 3, D, H, W)``."""
    image, target = sampler.sample(recipe.batch)
    return image, [target]


def _oom_words(oom: dict) -> str:
    """One line: requested and capacity bytes, then the allocator's message."""
    from revprof.units import format_bytes

    requested = format_bytes(oom["requested_bytes"]) if oom.get("requested_bytes") else "unknown"
    capacity = format_bytes(oom["capacity_bytes"]) if oom.get("capacity_bytes") else "unknown"
    return f"out of memory (requested {requested}, device capacity {capacity}): {oom['message']}"


def _device_words(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"


def save_checkpoint(model: torch.nn.Module, spec: ArchSpec, path: Path,
                    patch: tuple[int, int, int] | None = None,
                    crop: tuple[int, int, int] | None = None, recipe: Recipe | None = None,
                    spacing: tuple[float, float, float] | None = None) -> Path:
    """Save ``{"spec", "state_dict"}`` and, when given, the training ``patch``, ``crop``,
    ``recipe`` (with its ``precision`` beside it, which ``revprof predict`` runs at) and
    ``spacing`` (what ``revprof predict`` needs to preprocess as training did) atomically
    (temporary file, then rename)."""
    extra: dict[str, object] = {k: list(v) if isinstance(v, tuple) else v
                                for k, v in (("patch", patch), ("crop", crop), ("spacing", spacing))
                                if v is not None}
    if recipe is not None:
        extra["recipe"] = recipe.to_dict()
        extra["precision"] = recipe.precision
    checkpoint = {"spec": spec.to_dict(), "state_dict": model.state_dict(), **extra}
    buffer = io.BytesIO()  # torch.save's own writer turns a full disk into "unexpected pos"
    torch.save(checkpoint, buffer)
    return replace_file(path, buffer.getvalue(), make_folder=True, name=f"--save-model {path}")


def write_predictions(labels: dict[str, np.ndarray], data: PreparedData, out_dir: Path) -> list[Path]:
    """Write the validation label maps (original grid and convention) as ``<case>.nii.gz``."""
    import nibabel as nib

    out_dir = Path(out_dir)
    written = []
    for case in data.validation:
        path = out_dir / f"{case.case_id}.nii.gz"
        image = nib.Nifti1Image(labels[case.case_id], case.affine)
        replace_file(path, partial(nib.save, image), prefix=f".{case.case_id}.", suffix=".tmp.nii.gz",
                     name=str(path), make_folder=True)
        written.append(path)
    return written
