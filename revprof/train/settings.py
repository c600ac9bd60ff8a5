"""Settings and results of a short training run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from revprof import bounds
from revprof.errors import RevprofError
from revprof.recipe import PAPER, Recipe, recipe_or_paper
from revprof.spec import parse_patch


@dataclass(frozen=True)
class TrainSettings:
    """How a short training run is done: the data, the patch and the recipe.

    Attributes:
        data: a BraTS-layout directory; ``None`` uses synthetic demo cases generated once and
            cached under ``.revprof/demo-data``.
        patch: training patch ``(D, H, W)`` (paper: 128³).
        recipe: the training step and the run settings that belong to it (optimizer, loss,
            precision, batch, steps, lr schedule, foreground oversampling; see
            :class:`revprof.recipe.Recipe`).
        val_cases: held-out cases, split by patient.
        device: ``auto`` (CUDA when visible), ``cpu``, ``cuda`` or ``cuda:N``.
        seed: seeds the weights, the split and the patch sampler.
        convention: force a label convention instead of detecting it.
        crop: centre crop/pad of the brain's bounding box; ``None``: the paper's 160×192×160,
            or the bounding box itself when the volumes are smaller than that (synthetic data).
        synthetic_cases, synthetic_shape: size of the generated demo data set.
        spacing: target voxel size (mm); cases at another spacing are resampled to it in
            preprocessing (None keeps each case's spacing).
    """

    data: Path | None = None
    patch: tuple[int, int, int] = (128, 128, 128)
    recipe: Recipe = PAPER
    val_cases: int = 2
    device: str = "auto"
    seed: int = 0
    convention: str | None = None
    crop: tuple[int, int, int] | None = None
    synthetic_cases: int = 8
    synthetic_shape: tuple[int, int, int] = (64, 64, 64)
    spacing: tuple[float, float, float] | None = (1.0, 1.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Every setting, JSON-able (``recipe`` as its dict, the data folder as text)."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Recipe):
                value = value.to_dict()
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "training settings") -> TrainSettings:
        """Inverse of :meth:`to_dict`; missing settings take the defaults (a missing recipe: the
        paper's).

        Raises:
            RevprofError: not an object, an unknown setting, or a value of the wrong type or out of
                its bounds, in one line naming ``source`` and the setting.
        """
        if not isinstance(data, Mapping):
            raise RevprofError(f"{source} must be an object; got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                raise RevprofError(f"{source}: unknown setting {key!r}; settings: {', '.join(names)}")
            try:
                values[key] = _SETTING_CHECKS[key](key, value)
            except RevprofError as error:
                raise RevprofError(f"{source}: {error}") from None
        return cls(**values)


def _optional(check: Any) -> Any:
    return lambda name, value: None if value is None else check(name, value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise RevprofError(f"{name} must be a non-empty text; got {value!r}")
    return value


def _shape(name: str, value: Any) -> tuple[int, int, int]:
    if isinstance(value, bool) or not isinstance(value, (int, str, list, tuple)):
        raise RevprofError(f"{name} must be a size like [64, 64, 64]; got {value!r}")
    try:
        return parse_patch(value)
    except RevprofError as error:
        raise RevprofError(f"{name}: {error}") from None


def _spacing(name: str, value: Any) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise RevprofError(f"{name} must be three voxel sizes in mm like [1, 1, 1] or null; got {value!r}")
    return tuple(bounds.check_float(name, v, 1e-3, 100.0) for v in value)  # type: ignore[return-value]


_SETTING_CHECKS: dict[str, Any] = {
    "data": _optional(lambda name, value: Path(_text(name, value))),
    "patch": _shape,
    "recipe": lambda name, value: recipe_or_paper(value, source=name),
    "val_cases": lambda name, value: bounds.check_int(name, value, 0, bounds.MAX_SYNTHETIC_CASES),
    "device": _text,
    "seed": lambda name, value: bounds.check_int(name, value, 0, bounds.MAX_SEED),
    "convention": _optional(_text),
    "crop": _optional(_shape),
    "synthetic_cases": lambda name, value: bounds.check_int(name, value, 1, bounds.MAX_SYNTHETIC_CASES),
    "synthetic_shape": _shape,
    "spacing": _optional(_spacing),
}
"""How each setting read from a file is checked (and turned into its type)."""


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
