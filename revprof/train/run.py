"""A short BraTS training run: the accuracy side of the accuracy–memory trade-off.

Trains a spec as the paper does (batch 1, random patches with flips, Adam lr 1e-4 and weight
decay 1e-5, soft Dice loss over WT/TC/ET), measures memory and speed during the real run, and
scores Dice on held-out cases exactly as ``revprof evaluate`` does: on the original grid, with the
nested regions of the saved label maps, with the same function.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from revprof.errors import RevprofError, look_up
from revprof.interrupts import held_interrupts
from revprof.memory.measure import cuda_measurement, environment, measure_memory, oom_record, warm_up_cuda
from revprof.memory.step import PRECISIONS, make_optimizer, training_step
from revprof.memory.tracker import StorageTracker
from revprof.nn import build_model
from revprof.spec import ArchSpec, validate_patch
from revprof.train.demo_data import demo_dataset
from revprof.train.infer import predict_volume
from revprof.train.settings import CaseDice, TrainResult, TrainSettings


def resolve_device(device: str) -> torch.device:
    """``auto`` → the first CUDA device when visible, else the CPU.

    Raises:
        RevprofError: an unknown device or CUDA asked for without a GPU.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise RevprofError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise RevprofError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RevprofError(f"device {device!r} needs a CUDA GPU and none is visible; use --device cpu")
    return resolved


@dataclass
class PreparedData:
    """Preprocessed training and validation cases."""

    root: Path
    train: list
    validation: list
    cases: dict  # case id -> revprof.data.Case


def prepare_data(settings: TrainSettings, cache_dir: Path | None = None) -> PreparedData:
    """Discover, split by patient and preprocess (cached) the cases of ``settings.data``.

    Raises:
        RevprofError: no usable labelled cases, or too few to hold out ``val_cases``.
    """
    from revprof.data import PreprocessCache, PreprocessConfig, discover, split_by_patient

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
        from revprof.data import PAPER_SIZE, load_case

        first = load_case(labelled[0], with_labels=False)
        crop = PAPER_SIZE if all(s >= p for s, p in zip(first.image.shape[1:], PAPER_SIZE)) else None
    cache = PreprocessCache(cache_dir, PreprocessConfig(size=crop, spacing=settings.spacing))
    return PreparedData(root, [cache.get(c) for c in train_cases], [cache.get(c) for c in val_cases],
                        {c.case_id: c for c in labelled})


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), disable=not enabled,
                    transient=False)


def evaluate_cases(model: torch.nn.Module, spec: ArchSpec, cases: list, patch: tuple[int, int, int],
                   device: torch.device, precision: str,
                   sources: dict) -> tuple[list[CaseDice], dict[str, np.ndarray]]:
    """Dice per region of each validation case, exactly as ``revprof evaluate`` scores it.

    The prediction (threshold 0.5) is restored to the case's original grid and nested
    (:func:`revprof.data.preprocess.restore_labels`, the label map ``--save-predictions``
    writes) and compared with the case's reference label map by the function ``evaluate`` uses
    (:func:`revprof.evaluation.evaluate.region_dice_of_labels`).

    Args:
        cases: preprocessed validation cases.
        sources: case id → :class:`revprof.data.Case` (where the reference labels are read).

    Returns:
        ``(scores, label maps on the original grid by case id)``.
    """
    from revprof.data import get_convention
    from revprof.data.nifti import load_labels
    from revprof.data.preprocess import restore_labels
    from revprof.evaluation.evaluate import region_dice_of_labels

    scores, labels = [], {}
    for case in cases:
        probs = predict_volume(model, case.image, patch, spec.levels, device, precision)
        predicted = restore_labels(probs, case)
        reference = load_labels(sources[case.case_id])
        dice = region_dice_of_labels(predicted, reference, get_convention(case.convention))
        scores.append(CaseDice(case.case_id, dice["wt"], dice["tc"], dice["et"]))
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
                 cache_dir: Path | None = None) -> TrainResult:
    """Train ``spec`` for ``settings.steps`` steps and score it on the held-out cases.

    Out-of-memory and a non-finite loss are results (``status`` ``oom`` / ``diverged``), not
    exceptions. On the CPU, memory is the tracked figure (CUDA rounding, as ``--backend cpu``);
    on CUDA, ``max_memory_allocated``.

    Raises:
        RevprofError: bad settings or data.
    """
    patch = validate_patch(spec, settings.patch)
    look_up("precision", settings.precision, PRECISIONS)
    if settings.steps < 1:
        raise RevprofError(f"steps must be at least 1; got {settings.steps}")
    device = resolve_device(settings.device)
    data = prepare_data(settings, cache_dir)
    predicted = measure_memory(spec, patch, settings.batch, settings.precision, backend="simulate").peak_bytes

    from revprof.data import PatchSampler

    torch.manual_seed(settings.seed)
    model = build_model(spec)
    losses: list[float] = []
    durations: list[float] = []
    status, error, oom = "ok", None, None
    tracker = StorageTracker() if device.type == "cpu" else None
    image = target = None
    with held_interrupts() as checkpoint, _progress(progress) as bar, \
            cuda_measurement(device) as cudnn_settings:
        task = bar.add_task(f"training {spec.describe()}", total=settings.steps, loss="-")
        try:
            model = model.to(device)
            optimizer = make_optimizer(model)
            sampler = PatchSampler(data.train, patch, seed=settings.seed)
            if device.type == "cuda":  # as ``measure --backend cuda``: same warm-up and reset
                warm_up_cuda(device)
            for step in range(settings.steps):
                checkpoint()  # Ctrl-C stops between steps
                image, target = sampler.sample(settings.batch)
                image, target = image.to(device), target.to(device)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
                with tracker if tracker is not None else nullcontext():
                    if tracker is not None and step == 0:
                        tracker.register([*model.parameters()])
                    if tracker is not None:
                        tracker.register([image, target])
                    loss = training_step(model, optimizer, image, target, settings.precision)
                    value = float(loss)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # before reading the time
                durations.append(time.perf_counter() - started)
                losses.append(value)
                bar.update(task, advance=1, loss=f"{value:.4f}")
                if not math.isfinite(value):
                    status, error = "diverged", f"loss became {value} at step {step + 1}"
                    break
        except torch.OutOfMemoryError as out_of_memory:
            oom = oom_record(out_of_memory, device)
            status, error = "oom", _oom_words(oom)
        env = {**environment(str(device)), **cudnn_settings}
    del image, target
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = tracker.peak.bytes if tracker is not None and tracker.peak else 0
    timed = durations[1:] or durations
    seconds = float(np.median(timed)) if timed else float("nan")
    voxels = settings.batch * patch[0] * patch[1] * patch[2]
    scores: list[CaseDice] = []
    if status == "ok":
        try:
            with held_interrupts():
                scores, labels = evaluate_cases(model, spec, data.validation, patch, device,
                                                settings.precision, data.cases)
        except torch.OutOfMemoryError as out_of_memory:  # validation inference ran out
            oom = oom_record(out_of_memory, device)
            status, error, scores = "oom", "during validation: " + _oom_words(oom), []
        if save_predictions is not None and status == "ok":
            write_predictions(labels, data, save_predictions)
    if save_model is not None:
        save_checkpoint(model, spec, save_model)
    return TrainResult(
        status=status, dice=mean_dice(scores), dice_per_case=scores, peak_bytes=int(peak),
        predicted_peak_bytes=int(predicted), seconds_per_step=seconds,
        voxels_per_second=voxels / seconds if seconds and math.isfinite(seconds) else float("nan"),
        losses=losses, device=_device_words(device), steps_done=len(losses),
        train_cases=len(data.train), val_cases=len(data.validation),
        environment=env, error=error, oom=oom,
    )


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


def save_checkpoint(model: torch.nn.Module, spec: ArchSpec, path: Path) -> Path:
    """Save ``{"spec": ..., "state_dict": ...}`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save({"spec": spec.to_dict(), "state_dict": model.state_dict()}, temporary)
    temporary.replace(path)
    return path


def write_predictions(labels: dict[str, np.ndarray], data: PreparedData, out_dir: Path) -> list[Path]:
    """Write the validation label maps (original grid and convention) as ``<case>.nii.gz``."""
    import nibabel as nib

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for case in data.validation:
        path = out_dir / f"{case.case_id}.nii.gz"
        temporary = out_dir / f".{case.case_id}.tmp.nii.gz"
        nib.save(nib.Nifti1Image(labels[case.case_id], case.affine), temporary)
        temporary.replace(path)
        written.append(path)
    return written
