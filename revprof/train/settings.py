"""Settings and results of a short training run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

Schedule = Literal["constant", "poly"]
"""Learning-rate schedules: the paper's constant rate, or nnU-Net's polynomial decay."""
SCHEDULES: tuple[str, ...] = get_args(Schedule)


@dataclass(frozen=True)
class TrainSettings:
    """How a short training run is done (the paper's recipe at a small scale).

    Attributes:
        data: a BraTS-layout directory; ``None`` uses synthetic demo cases generated once and
            cached under ``.revprof/demo-data``.
        patch: training patch ``(D, H, W)`` (paper: 128³).
        steps: optimizer steps (batch ``batch`` each).
        val_cases: held-out cases, split by patient.
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast.
        device: ``auto`` (CUDA when visible), ``cpu``, ``cuda`` or ``cuda:N``.
        seed: seeds the weights, the split and the patch sampler.
        batch: batch size (paper: 1).
        convention: force a label convention instead of detecting it.
        crop: centre crop/pad of the brain's bounding box; ``None``: the paper's 160×192×160,
            or the bounding box itself when the volumes are smaller than that (synthetic data).
        synthetic_cases, synthetic_shape: size of the generated demo data set.
        spacing: target voxel size (mm); cases at another spacing are resampled to it in
            preprocessing (None keeps each case's spacing).
        lr: Adam's learning rate (paper: 1e-4).
        schedule: ``constant`` (the paper) or ``poly``: nnU-Net's ``lr * (1 - step/steps)**0.9``.
        foreground: fraction of patches made to contain tumour (nnU-Net: 1/3); 0: uniform.
    """

    data: Path | None = None
    patch: tuple[int, int, int] = (128, 128, 128)
    steps: int = 100
    val_cases: int = 2
    precision: str = "fp32"
    device: str = "auto"
    seed: int = 0
    batch: int = 1
    convention: str | None = None
    crop: tuple[int, int, int] | None = None
    synthetic_cases: int = 8
    synthetic_shape: tuple[int, int, int] = (64, 64, 64)
    spacing: tuple[float, float, float] | None = (1.0, 1.0, 1.0)
    lr: float = 1e-4
    schedule: Schedule = "constant"
    foreground: float = 0.0


@dataclass
class CaseDice:
    """Dice per region of one validation case.

    ``empty`` names the regions with no voxel in the case's reference (BraTS scores their Dice
    1 when the prediction is empty too, 0 otherwise).
    """

    case: str
    wt: float
    tc: float
    et: float
    empty: tuple[str, ...] = ()


@dataclass
class TrainResult:
    """What a short run produced. ``status`` is ``ok``, ``oom`` or ``diverged``."""

    status: str
    dice: dict[str, float] | None
    dice_per_case: list[CaseDice]
    peak_bytes: int
    predicted_peak_bytes: int | None
    seconds_per_step: float
    voxels_per_second: float
    losses: list[float]
    device: str
    steps_done: int
    train_cases: int
    val_cases: int
    environment: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    oom: dict[str, Any] | None = None
    """For ``oom``: message, requested bytes, device capacity and allocated bytes."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)
