"""The training recipe: the step a user really runs, as one frozen, validated value.

A :class:`Recipe` says everything about training that is not the network or the data: the
optimizer and its hyper-parameters (and which PyTorch implementation runs it), the loss and the
form of its targets, the precision and the ``GradScaler``, gradient clipping and accumulation,
where ``zero_grad`` happens, the batch, and the run settings of a short training run (steps,
learning-rate schedule, foreground oversampling). It is validated when it is made (every message
names the field), round-trips through JSON, and has a stable hash.

The step itself is built from it in :mod:`revprof.step`; measurement, training, the sweep's time
estimate and the benchmark all run that one step. Presets (:data:`PRESETS`) give the steps that
the paper, nnU-Net and MONAI's BraTS bundle run, each with its source; a recipe file or command
line options override single fields (:func:`resolve_recipe`).

Example:
    >>> recipe = preset("nnunet")
    >>> recipe.optimizer, recipe.lr, recipe.uses_scaler
    ('sgd', 0.01, True)
    >>> Recipe.from_dict(recipe.to_dict()) == recipe
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from revprof.bounds import MAX_BATCH, MAX_STEPS, read_json_file
from revprof.errors import RevprofError, closest, look_up
from revprof.spec import PRECISIONS, Precision

OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"]
"""The optimizers (``torch.optim.SGD``, ``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad``)."""
Implementation = Literal["foreach", "fused", "for-loop"]
"""How the optimizer runs: ``foreach`` (what PyTorch picks on CUDA by default for all five),
``fused`` (one kernel; not for RMSprop) or ``for-loop`` (one parameter at a time)."""
LossName = Literal["dice", "dice_ce", "ce"]
"""Soft Dice, Dice plus cross-entropy (nnU-Net's ``DC_and_CE``/``DC_and_BCE``), or cross-entropy."""
Targets = Literal["regions", "classes", "labels"]
"""What the output is trained against: ``regions`` (one sigmoid channel per overlapping region,
float masks ``(B, C, *S)``), ``classes`` (softmax over exclusive classes, indices ``(B, *S)``
int64) or ``labels`` (classification: logits ``(B, K)``, one index per sample ``(B,)``)."""
ZeroGrad = Literal["start", "after_loss", "end"]
"""Where ``optimizer.zero_grad`` runs: before the forward (nnU-Net, MONAI), after the loss and
before the backward, or after the optimizer step (the paper's step in revprof)."""
Schedule = Literal["constant", "poly", "cosine"]
"""Learning-rate schedules over ``steps``: constant; nnU-Net's ``(1 - step/steps)**0.9``; or
cosine annealing to 0 (MONAI's ``CosineAnnealingLR``, here over steps instead of epochs)."""
AfterStep = Literal["none", "max"]
"""An op a loop runs after the optimizer step: nothing, or ``torch.max(outputs, 1)`` (a
classification loop's accuracy), whose result and the outputs stay alive into the next step."""
Transfer = Literal["resident", "per_step"]
"""Where the batch lives: created on the device once (``resident``), or on the host and copied to
the device every step (``per_step``, as a data loader hands batches over)."""

OPTIMIZERS: tuple[OptimizerName, ...] = get_args(OptimizerName)
IMPLEMENTATIONS: tuple[Implementation, ...] = get_args(Implementation)
LOSS_NAMES: tuple[LossName, ...] = get_args(LossName)
TARGETS: tuple[Targets, ...] = get_args(Targets)
ZERO_GRADS: tuple[ZeroGrad, ...] = get_args(ZeroGrad)
SCHEDULES: tuple[Schedule, ...] = get_args(Schedule)
AFTER_STEPS: tuple[AfterStep, ...] = get_args(AfterStep)
TRANSFERS: tuple[Transfer, ...] = get_args(Transfer)

OPTIMIZER_DEFAULTS: dict[OptimizerName, dict[str, Any]] = {
    "sgd": {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adam": {"weight_decay": 0.0, "betas": (0.9, 0.999), "eps": 1e-8},
    "adamw": {"weight_decay": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8},
    "rmsprop": {"momentum": 0.0, "weight_decay": 0.0, "eps": 1e-8},
    "adagrad": {"weight_decay": 0.0, "eps": 1e-10},
}
"""PyTorch's default of every hyper-parameter each optimizer takes (a recipe field left ``None``
takes it); a field an optimizer does not take must stay ``None``."""

_NEWER_FIELDS = ("intensity", "spatial")
"""Fields added after recipe keys were first stored (see :data:`_KEYED_WHEN_SET`)."""

MAX_CLIP = 1e9
MAX_ACCUMULATE = 1024


@dataclass(frozen=True)
class Recipe:
    """How a network is trained (see the module docstring); every field is validated.

    Attributes:
        name: the preset this recipe came from (``custom`` when built field by field); not part of
            equality or the hash.
        optimizer: one of :data:`OPTIMIZERS`.
        lr: learning rate (the schedule starts here).
        momentum, nesterov, weight_decay, betas, eps: the optimizer's hyper-parameters; ``None``
            is PyTorch's default for that optimizer (:data:`OPTIMIZER_DEFAULTS`).
        implementation: ``foreach`` (PyTorch's default on CUDA for all five), ``fused`` or
            ``for-loop``; measured as given on every device.
        loss: ``dice``, ``dice_ce`` or ``ce`` (``labels`` targets take ``ce`` only).
        targets: ``regions``, ``classes`` or ``labels`` (:data:`Targets`).
        deep_supervision: weights of the outputs of a network that returns several (full
            resolution first); ``None``: nnU-Net's ``1/2**i`` with the lowest output at 0,
            normalised to sum 1. Outputs weighted 0 are not scored.
        dice_smooth: ``(numerator, denominator)`` smoothing of the soft Dice.
        batch_dice: one Dice over the whole batch per channel (``False``: per sample, then the mean).
        dice_squared: the denominator sums squared predictions and targets (``False``: plain sums).
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast of the forward.
        grad_scaler: scale the loss with ``torch.amp.GradScaler`` (``None``: on for ``fp16`` only).
        clip: ``clip_grad_norm_`` to this total norm after unscaling (``None``: no clipping).
        accumulate: micro-batches whose gradients add up before each optimizer step.
        zero_grad: where ``zero_grad`` runs (:data:`ZeroGrad`).
        set_to_none: ``zero_grad(set_to_none=...)``: free the gradients, or keep them zeroed.
        batch: samples per micro-batch.
        steps: optimizer steps of a training run.
        schedule: the learning-rate schedule (:data:`Schedule`).
        foreground: fraction of patches made to contain tumour (nnU-Net: 0.33); 0: uniform.
        intensity: strength of the random scale and shift of each modality of every training
            patch (:func:`revprof.data.sampling.jitter_intensity`; MONAI's BraTS tutorial: 0.1);
            0: none (patches are only flipped).
        spatial: probability of a random rotation (up to 30° about each axis) and, independently,
            of a random scale (0.7 to 1.4) of every training patch
            (:func:`revprof.data.sampling.spatial_transform`; nnU-Net: 0.2); 0: none.
        after_step: an op after the optimizer step (:data:`AfterStep`).
        transfer: where the batch lives (:data:`Transfer`).
    """

    name: str = field(default="custom", compare=False)
    optimizer: OptimizerName = "adam"
    lr: float = 1e-4
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    betas: tuple[float, float] | None = None
    eps: float | None = None
    implementation: Implementation = "foreach"
    loss: LossName = "dice"
    targets: Targets = "regions"
    deep_supervision: tuple[float, ...] | None = None
    dice_smooth: tuple[float, float] = (1.0, 1.0)
    batch_dice: bool = True
    dice_squared: bool = True
    precision: Precision = "fp32"
    grad_scaler: bool | None = None
    clip: float | None = None
    accumulate: int = 1
    zero_grad: ZeroGrad = "end"
    set_to_none: bool = True
    batch: int = 1
    steps: int = 100
    schedule: Schedule = "constant"
    foreground: float = 0.0
    intensity: float = 0.0
    spatial: float = 0.0
    after_step: AfterStep = "none"
    transfer: Transfer = "resident"

    def __post_init__(self) -> None:
        for name in ("betas", "deep_supervision", "dice_smooth"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        _validate(self)

    # ---- derived ----------------------------------------------------------------------------
    @property
    def uses_scaler(self) -> bool:
        """Whether the step scales the loss with a ``GradScaler`` (``grad_scaler`` or fp16)."""
        return self.precision == "fp16" if self.grad_scaler is None else self.grad_scaler

    def optimizer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the ``torch.optim`` constructor: ``lr``, every hyper-parameter
        the recipe sets (the others are PyTorch's defaults) and the implementation."""
        kwargs: dict[str, Any] = {"lr": self.lr}
        for name in OPTIMIZER_DEFAULTS[self.optimizer]:
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        kwargs["foreach"] = self.implementation == "foreach"
        if self.implementation == "fused":
            kwargs["fused"] = True
            kwargs.pop("foreach")
        return kwargs

    def hyperparameters(self) -> dict[str, Any]:
        """Every hyper-parameter of the optimizer with its value in force (the recipe's or
        PyTorch's default)."""
        return {name: default if getattr(self, name) is None else getattr(self, name)
                for name, default in OPTIMIZER_DEFAULTS[self.optimizer].items()}

    def state_copies(self) -> int:
        """Optimizer-state tensors the size of the parameters: SGD with momentum 1, Adam and AdamW
        2, RMSprop 1 (2 more with momentum or ``centered``: not offered), Adagrad 1."""
        values = self.hyperparameters()
        if self.optimizer == "sgd":
            return 1 if values["momentum"] else 0
        if self.optimizer in ("adam", "adamw"):
            return 2
        if self.optimizer == "rmsprop":
            return 2 if values["momentum"] else 1
        return 1

    def ds_weights(self, outputs: int) -> list[float]:
        """The weight of each of ``outputs`` outputs (one output: ``[1.0]``).

        Raises:
            RevprofError: ``deep_supervision`` gives another number of weights.
        """
        if outputs == 1:
            return [1.0]
        if self.deep_supervision is None:
            weights = [1 / 2 ** i for i in range(outputs)]
            weights[-1] = 0.0
            total = sum(weights)
            return [w / total for w in weights]
        if len(self.deep_supervision) != outputs:
            raise RevprofError(f"recipe.deep_supervision has {len(self.deep_supervision)} weights "
                               f"but the network returns {outputs} outputs",
                               field="deep_supervision")
        return list(self.deep_supervision)

    # ---- words ------------------------------------------------------------------------------
    def describe(self) -> str:
        """One line: ``paper: adam lr 1e-04 wd 1e-05 (foreach) · dice on regions · fp32 · batch 1``."""
        values = self.hyperparameters()
        opt = [f"{self.optimizer} lr {self.lr:g}"]
        if values.get("momentum"):
            opt.append(f"momentum {values['momentum']:g}{' nesterov' if values.get('nesterov') else ''}")
        if values.get("weight_decay"):
            opt.append(f"wd {values['weight_decay']:g}")
        parts = [" ".join(opt) + f" ({self.implementation})", f"{self.loss} on {self.targets}",
                 self.precision + (" + GradScaler" if self.uses_scaler else "")]
        if self.clip is not None:
            parts.append(f"clip {self.clip:g}")
        if self.accumulate > 1:
            parts.append(f"accumulate {self.accumulate}")
        parts.append(f"zero_grad at {self.zero_grad}" + ("" if self.set_to_none else " (kept)"))
        parts.append(f"batch {self.batch}")
        return f"{self.name}: " + " · ".join(parts)

    def run_words(self) -> str:
        """The run settings: ``100 steps, constant lr, foreground 0`` (and ``, intensity 0.1`` /
        ``, spatial 0.2`` when patches are augmented in intensity / space)."""
        words = f"{self.steps} steps, {self.schedule} lr, foreground {self.foreground:g}"
        words += f", intensity {self.intensity:g}" if self.intensity else ""
        return words + (f", spatial {self.spatial:g}" if self.spatial else "")

    # ---- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-able (tuples as lists), ``name`` first."""
        data = dataclasses.asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "recipe") -> Recipe:
        """Inverse of :meth:`to_dict`; missing fields take the dataclass defaults.

        Raises:
            RevprofError: not an object, an unknown field, or an invalid value (named with
                ``source``).
        """
        if not isinstance(data, Mapping):
            raise RevprofError(f"{source} must be an object of recipe fields; got "
                               f"{type(data).__name__}")
        _check_keys(data, source)
        try:
            return cls(**dict(data))
        except RevprofError as error:
            raise RevprofError(f"{source}: {error}", field=error.field, problem=error.problem) from None

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def key(self) -> str:
        """A stable 16-hex-digit hash of every field but ``name`` (equal recipes, equal keys).

        Fields added after keys were first stored (:data:`_KEYED_WHEN_SET`) count only when they
        differ from their default, so a recipe that does not use them keeps its earlier key (and
        a study resumed with it finds the networks it trained)."""
        data = self.to_dict()
        data.pop("name")
        for name, default in _KEYED_WHEN_SET.items():
            if data.get(name) == default:
                data.pop(name)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "recipe") -> Recipe:
        """This recipe with ``overrides`` (field → value) applied; the name stays when nothing
        changes, else becomes ``NAME+`` (a preset with overrides).

        Raises:
            RevprofError: an unknown field or an invalid value.
        """
        if not overrides:
            return self
        _check_keys(overrides, source)
        changes = {k: v for k, v in overrides.items() if k != "name"}
        try:
            changed = replace(self, **changes)
        except RevprofError as error:
            raise RevprofError(f"{source}: {error}", field=error.field, problem=error.problem) from None
        except TypeError as error:  # a field that replace() cannot take
            raise RevprofError(f"{source}: {error}") from None
        name = overrides.get("name") or (self.name if changed == self else f"{self.name}+")
        return replace(changed, name=str(name))


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Recipe))
"""The recipe's fields, in order."""

_KEYED_WHEN_SET: dict[str, Any] = {f.name: f.default for f in fields(Recipe) if f.name in _NEWER_FIELDS}
"""The newer fields with their defaults, at which :meth:`Recipe.key` leaves them out."""


def with_newer_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """A stored recipe dict with the fields added since (:data:`_KEYED_WHEN_SET`) at their
    defaults, so that a recipe stored before they existed compares equal to the same recipe now."""
    return {**_KEYED_WHEN_SET, **data}


def _check_keys(data: Mapping[str, Any], source: str) -> None:
    for key in data:
        if key not in FIELDS:
            problem = f"is not a recipe field{closest(str(key), FIELDS)}; fields: {', '.join(FIELDS)}"
            raise RevprofError(f"{source}: {key!r} {problem}", field=str(key), problem=problem)


def _fail(name: str, problem: str) -> None:
    raise RevprofError(f"recipe.{name} {problem}", field=name, problem=problem)


def _number(name: str, value: Any, low: float, high: float, *, open_low: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(name, f"must be a finite number; got {value!r}")
    if value < low or value > high or (open_low and value == low):
        side = f"above {low:g}" if open_low else f"from {low:g}"
        _fail(name, f"must be {side} to {high:g}; got {value!r}")


def _integer(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(name, f"must be a whole number from {low} to {high}; got {value!r}")
    if not low <= value <= high:
        _fail(name, f"must be from {low} to {high}; got {value}")


def _flag(name: str, value: Any, optional: bool = False) -> None:
    if not isinstance(value, bool) and not (optional and value is None):
        _fail(name, f"must be true or false; got {value!r}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        hint = closest(value, choices) if isinstance(value, str) else ""
        _fail(name, f"must be one of {', '.join(choices)}; got {value!r}{hint}")


def _validate(r: Recipe) -> None:
    """Every rule of a recipe; the first broken one raises, naming its field."""
    if not isinstance(r.name, str) or not r.name:
        _fail("name", f"must be a non-empty text; got {r.name!r}")
    _choice("optimizer", r.optimizer, OPTIMIZERS)
    _number("lr", r.lr, 0.0, 10.0, open_low=True)
    takes = OPTIMIZER_DEFAULTS[r.optimizer]
    for name in ("momentum", "nesterov", "weight_decay", "betas", "eps"):
        if getattr(r, name) is not None and name not in takes:
            _fail(name, f"is not a setting of {r.optimizer} (it takes {', '.join(takes)}); leave it unset")
    if r.momentum is not None:
        _number("momentum", r.momentum, 0.0, 1.0)
        if r.momentum == 1.0:
            _fail("momentum", "must be below 1")
    _flag("nesterov", r.nesterov, optional=True)
    if r.weight_decay is not None:
        _number("weight_decay", r.weight_decay, 0.0, 1.0)
    if r.eps is not None:
        _number("eps", r.eps, 0.0, 1.0, open_low=True)
    if r.betas is not None:
        if not isinstance(r.betas, tuple) or len(r.betas) != 2:
            _fail("betas", f"must be two numbers [beta1, beta2]; got {r.betas!r}")
        for i, beta in enumerate(r.betas):
            _number(f"betas[{i}]", beta, 0.0, 1.0)
            if beta == 1.0:
                _fail(f"betas[{i}]", "must be below 1")
    if r.hyperparameters().get("nesterov") and (not r.hyperparameters()["momentum"]):
        _fail("nesterov", "needs a momentum above 0 (PyTorch's SGD refuses Nesterov without it)")
    _choice("implementation", r.implementation, IMPLEMENTATIONS)
    if r.implementation == "fused" and r.optimizer == "rmsprop":
        _fail("implementation", "'fused' has no RMSprop in PyTorch; use foreach or for-loop")
    _choice("loss", r.loss, LOSS_NAMES)
    _choice("targets", r.targets, TARGETS)
    if r.targets == "labels" and r.loss != "ce":
        _fail("loss", f"must be 'ce' for targets 'labels' (classification); got {r.loss!r}")
    if r.deep_supervision is not None:
        if not isinstance(r.deep_supervision, tuple) or not r.deep_supervision:
            _fail("deep_supervision", f"must be a list of weights; got {r.deep_supervision!r}")
        for i, weight in enumerate(r.deep_supervision):
            _number(f"deep_supervision[{i}]", weight, 0.0, 1e6)
        if r.deep_supervision[0] == 0:
            _fail("deep_supervision", "must weight the full-resolution output (the first) above 0")
    if not isinstance(r.dice_smooth, tuple) or len(r.dice_smooth) != 2:
        _fail("dice_smooth", f"must be two numbers [numerator, denominator]; got {r.dice_smooth!r}")
    for i, smooth in enumerate(r.dice_smooth):
        _number(f"dice_smooth[{i}]", smooth, 0.0, 1e6)
    _flag("batch_dice", r.batch_dice)
    _flag("dice_squared", r.dice_squared)
    _choice("precision", r.precision, PRECISIONS)
    _flag("grad_scaler", r.grad_scaler, optional=True)
    if r.clip is not None:
        _number("clip", r.clip, 0.0, MAX_CLIP, open_low=True)
    _integer("accumulate", r.accumulate, 1, MAX_ACCUMULATE)
    _choice("zero_grad", r.zero_grad, ZERO_GRADS)
    _flag("set_to_none", r.set_to_none)
    if r.accumulate > 1 and r.zero_grad == "after_loss":
        _fail("zero_grad", "cannot be 'after_loss' with accumulate > 1 (it would drop the "
                           "accumulated gradients); use start or end")
    _integer("batch", r.batch, 1, MAX_BATCH)
    _integer("steps", r.steps, 1, MAX_STEPS)
    _choice("schedule", r.schedule, SCHEDULES)
    _number("foreground", r.foreground, 0.0, 1.0)
    _number("intensity", r.intensity, 0.0, 0.5)
    _number("spatial", r.spatial, 0.0, 1.0)
    _choice("after_step", r.after_step, AFTER_STEPS)
    _choice("transfer", r.transfer, TRANSFERS)


# ---- presets ------------------------------------------------------------------------------------

PAPER = Recipe(name="paper", optimizer="adam", lr=1e-4, weight_decay=1e-5)
"""The paper's step (Brügger, Baumgartner & Konukoglu, MICCAI 2019, section 3): Adam, learning
rate 1e-4, weight decay 1e-5, batch 1, soft Dice over the three region channels (WT, TC, ET),
fp32; revprof's own ``zero_grad(set_to_none=True)`` after the step, Adam's ``foreach`` as on CUDA."""

NNUNET = Recipe(
    name="nnunet", optimizer="sgd", lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5,
    loss="dice_ce", targets="regions", dice_smooth=(1e-5, 1e-5), batch_dice=True,
    dice_squared=False, precision="fp16", grad_scaler=True, clip=12.0, zero_grad="start",
    set_to_none=True, batch=2, schedule="poly", foreground=0.33, transfer="per_step")
"""nnU-Net v2's ``nnUNetTrainer`` (MIC-DKFZ/nnUNet, ``nnunetv2/training/nnUNetTrainer/
nnUNetTrainer.py``): ``configure_optimizers`` — SGD lr 1e-2, momentum 0.99, Nesterov, weight
decay 3e-5, ``PolyLRScheduler`` (exponent 0.9); ``_build_loss`` — Dice (``MemoryEfficientSoftDiceLoss``,
smooth 1e-5, plain sums, batch Dice as 3d_fullres plans set it) plus cross-entropy, binary per
region for region-based training as BraTS is (``DC_and_BCE_loss``, ``do_bg=True``; with
``targets='classes'`` ``DC_and_CE_loss`` without the background), deep supervision weights
``1/2**i`` with the lowest output at 0; ``train_step`` — ``zero_grad(set_to_none=True)`` first,
fp16 autocast, ``GradScaler`` scale/backward/unscale, ``clip_grad_norm_(…, 12)``, scaler step and
update; batch 2 (its default 3d_fullres plans), ``oversample_foreground_percent = 0.33``, batches
copied to the GPU each step."""

MONAI_BRATS = Recipe(
    name="monai-brats", optimizer="adam", lr=1e-4, weight_decay=1e-5, loss="dice",
    targets="regions", dice_smooth=(0.0, 1e-5), batch_dice=False, dice_squared=True,
    precision="fp16", grad_scaler=True, zero_grad="start", set_to_none=False, batch=1,
    schedule="cosine", transfer="per_step")
"""MONAI model zoo's ``brats_mri_segmentation`` bundle (Project-MONAI/model-zoo,
``models/brats_mri_segmentation/configs/train.json``): Adam lr 1e-4, weight decay 1e-5,
``CosineAnnealingLR``; ``DiceLoss(sigmoid=True, squared_pred=True, smooth_nr=0, smooth_dr=1e-5)``
over the three region channels (per sample); ``amp: true``, so ``SupervisedTrainer`` runs fp16
autocast with a ``GradScaler``; ``SupervisedTrainer`` calls ``zero_grad(set_to_none=False)`` (its
``optim_set_to_none`` default) before the forward, so gradients stay allocated; batch 1, random
crops (no foreground oversampling), batches copied to the GPU each step."""

PRESETS: dict[str, Recipe] = {"paper": PAPER, "nnunet": NNUNET, "monai-brats": MONAI_BRATS}
"""The recipes by name, each documented with its source above."""


def preset(name: str) -> Recipe:
    """The preset ``name`` (``paper``, ``nnunet``, ``monai-brats``).

    Raises:
        RevprofError: an unknown name (with the closest one).
    """
    return PRESETS[look_up("recipe", name, tuple(PRESETS))]


def read_recipe_file(path: Path | str) -> Recipe:
    """A recipe from a JSON file: an object of fields, optionally with ``"preset": NAME`` as its
    base (``{"preset": "nnunet", "batch": 4}``); the other fields override the base.

    Raises:
        RevprofError: the file cannot be read, is not JSON, or has a bad field.
    """
    data = read_json_file(path, "recipe file", f"no such file (a preset is one of {', '.join(PRESETS)})")
    return recipe_from_table(data, source=f"recipe file {path}")


def recipe_from_table(data: Any, source: str = "recipe") -> Recipe:
    """A recipe from a table of fields with an optional ``preset`` base (default ``paper``): the
    form of recipe files and of a study file's ``[recipe]`` table.

    Raises:
        RevprofError: not a table, an unknown preset or field, or a bad value.
    """
    if not isinstance(data, Mapping):
        raise RevprofError(f"{source} must be an object of recipe fields; got {type(data).__name__}")
    values = dict(data)
    base_name = values.pop("preset", "paper")
    if not isinstance(base_name, str) or base_name not in PRESETS:
        hint = closest(base_name, PRESETS) if isinstance(base_name, str) else ""
        problem = f"must be one of {', '.join(PRESETS)}; got {base_name!r}{hint}"
        raise RevprofError(f"{source}: preset {problem}", field="preset", problem=problem)
    return PRESETS[base_name].with_overrides(values, source=source)


def resolve_recipe(name_or_file: str | None = None, overrides: Mapping[str, Any] | None = None,
                   default: Recipe = PAPER) -> Recipe:
    """The recipe a command runs: a preset name or a JSON file (``None``: ``default``), then the
    overrides (a ``None`` value unsets a field, e.g. back to PyTorch's default).

    Raises:
        RevprofError: an unknown preset, a bad file, or a bad override.
    """
    if name_or_file is None:
        base = default
    elif name_or_file in PRESETS:
        base = PRESETS[name_or_file]
    elif name_or_file.endswith(".json") or Path(name_or_file).exists():
        base = read_recipe_file(name_or_file)
    else:
        base = preset(name_or_file)  # raises with "did you mean"
    return base.with_overrides(dict(overrides or {}), source="recipe override")


def recipe_or_paper(data: Any, source: str = "recipe", **settings: Any) -> Recipe:
    """A stored recipe (:meth:`Recipe.to_dict`), or, when ``data`` is ``None``, the paper's with
    the recipe ``settings`` such a record kept beside it (stores, spec files, checkpoints and
    results written before recipes existed trained the paper's way at their own batch,
    precision, steps, learning rate, schedule and foreground; ``None`` settings are left out).

    Raises:
        RevprofError: an invalid stored recipe or setting, naming ``source``.
    """
    if data is None:
        kept = {k: v for k, v in settings.items() if v is not None}
        return PAPER.with_overrides(kept, source=source) if kept else PAPER
    return Recipe.from_dict(data, source=source)
