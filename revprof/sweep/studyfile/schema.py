"""What a study file says, once validated: the dataclasses and the constants of the format.

:mod:`revprof.sweep.studyfile.parse` builds a :class:`StudyFile` from TOML; the search space's
dimensions are in :mod:`revprof.sweep.studyfile.dims`; :mod:`revprof.sweep.space` turns an Optuna
trial into a network with :func:`spec_for`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from revprof import bounds
from revprof.errors import RevprofError
from revprof.memory.cards import DeviceCapacity, parse_device_memory
from revprof.memory.device import allocator_capacity
from revprof.recipe import PAPER, Recipe
from revprof.spec import ArchSpec, parse_patch, spec_from_options
from revprof.sweep.studyfile.dims import PER_LEVEL_FLAG, Dim

OBJECTIVES: dict[str, Literal["minimize", "maximize"]] = {
    "dice": "maximize", "peak_bytes": "minimize", "seconds_per_step": "minimize"}
"""Objectives a study file may name, with their directions."""
MEMORY_ONLY_OBJECTIVES = ("params", "peak_bytes")
"""Objectives of a memory-only study: capacity (parameters) up, predicted peak memory down."""
MEMORY_ONLY_DIRECTIONS: tuple[Literal["minimize", "maximize"], ...] = ("maximize", "minimize")
SAMPLERS = ("tpe", "nsga2", "random", "grid")

TABLES = ("study", "data", "fixed", "recipe", "space", "sampler", "enqueue")
STUDY_KEYS = ("name", "description", "trials", "objectives", "budget", "device_memory")
DATA_KEYS = ("path", "convention", "crop", "spacing", "synthetic_cases", "synthetic_shape")
RECIPE_IN_FIXED = ("batch", "steps", "precision", "lr", "schedule", "foreground")
"""Recipe fields a ``[fixed]`` table may also set (study files written before ``[recipe]``
existed); setting one in both tables is an error."""
FIXED_KEYS = ("patch", "val_cases", "device", "seed", *RECIPE_IN_FIXED)
SAMPLER_KEYS = ("name", "seed", "n_startup_trials", "multivariate", "population_size")
SPACE_KEYS = ("arch", "levels", "width", "widths", "growth", "max_width", "depth", "encoder_depth",
              "decoder_depth", "per_level_depth", "reversible", "per_level_reversible",
              "checkpoint", "groups", "patch")
"""The keys of the tables, in the order error messages list them."""
INT_DIMS = ("levels", "width", "max_width", "depth", "encoder_depth", "decoder_depth")
"""Space keys that may be an integer range."""
DEPTH_DIMS = ("depth", "encoder_depth", "decoder_depth")
"""Space keys searched per level when ``per_level_depth`` is set."""
DIM_MAX = {"levels": bounds.MAX_LEVELS, "width": bounds.MAX_WIDTH, "max_width": bounds.MAX_WIDTH,
           "depth": bounds.MAX_DEPTH, "encoder_depth": bounds.MAX_DEPTH,
           "decoder_depth": bounds.MAX_DEPTH, "groups": bounds.MAX_WIDTH}
"""The largest value of each integer setting (see :mod:`revprof.bounds`)."""


@dataclass(frozen=True)
class DataSettings:
    """Where the training cases come from; ``path`` None means synthetic demo cases."""

    path: str | None = None
    convention: str | None = None
    crop: tuple[int, int, int] | None = None
    synthetic_cases: int = 8
    synthetic_shape: tuple[int, int, int] = (64, 64, 64)
    spacing: tuple[float, float, float] | None = (1.0, 1.0, 1.0)
    """Target voxel size in mm (cases at another spacing are resampled); None keeps each case's."""


@dataclass(frozen=True)
class FixedSettings:
    """Settings every trial shares besides the recipe (the patch may instead be searched in
    ``[space]``)."""

    patch: tuple[int, int, int] = (128, 128, 128)
    val_cases: int = 2
    device: str = "auto"
    seed: int = 0


TRAINING_DEFAULTS = {key: getattr(PAPER, key) for key in ("lr", "schedule", "foreground")}
"""The paper's run settings; a study's ``fixed`` attribute lists these only when they differ
(stores written before they could be set lack them)."""


@dataclass(frozen=True)
class SamplerSettings:
    """The Optuna sampler and its options."""

    name: str = "tpe"
    seed: int | None = 0
    n_startup_trials: int | None = None
    multivariate: bool = True
    population_size: int | None = None


@dataclass(frozen=True)
class EnqueuedTrial:
    """A trial to run before the sampler's own: parameter values, or a fixed spec (and patch)."""

    label: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    spec: ArchSpec | None = None
    patch: tuple[int, int, int] | None = None

    def user_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.label:
            attrs["label"] = self.label
        if self.spec is not None:
            attrs["enqueued_spec"] = self.spec.to_dict()
        if self.patch is not None:
            attrs["enqueued_patch"] = list(self.patch)
        return attrs


@dataclass(frozen=True)
class StudyFile:
    """One validated study file.

    Attributes:
        name: the study name (the Optuna study is ``name``, or ``name-memory`` memory-only).
        trials: complete trials wanted.
        objectives: objective names in order (``dice``, ``peak_bytes``, optionally
            ``seconds_per_step``).
        budget_bytes: the memory budget, or None (with ``device_memory`` and no budget: the
            card's total memory).
        device_memory: the card every trial is predicted on (a size or a card name, see
            :func:`revprof.memory.cards.parse_device_memory`): a trial the allocator replay says
            would run out of its memory is ``oom`` and not trained. ``None``: no card.
        recipe: how every trial trains (``[recipe]``: a preset and overrides, plus the recipe
            keys of ``[fixed]``).
        space: search dimensions by key (see :data:`SPACE_KEYS`); absent keys take the
            :func:`revprof.spec.spec_from_options` defaults.
        per_level_depth, per_level_reversible: search depth / reversibility per level.
    """

    name: str
    path: str
    trials: int
    objectives: tuple[str, ...]
    budget_bytes: int | None
    data: DataSettings
    fixed: FixedSettings
    recipe: Recipe
    space: dict[str, Dim]
    per_level_depth: bool
    per_level_reversible: bool
    sampler: SamplerSettings
    enqueue: tuple[EnqueuedTrial, ...]
    description: str = ""
    device_memory: str | None = None

    # ---- derived ----------------------------------------------------------------------------
    def study_name(self, memory_only: bool) -> str:
        """The Optuna study name: memory-only runs keep their own study (other objectives)."""
        return f"{self.name}-memory" if memory_only else self.name

    def objective_names(self, memory_only: bool) -> tuple[str, ...]:
        return MEMORY_ONLY_OBJECTIVES if memory_only else self.objectives

    def directions(self, memory_only: bool) -> list[Literal["minimize", "maximize"]]:
        if memory_only:
            return list(MEMORY_ONLY_DIRECTIONS)
        return [OBJECTIVES[o] for o in self.objectives]

    def allocator_card(self) -> DeviceCapacity | None:
        """The card as its caching allocator sees it (:func:`revprof.memory.device.allocator_capacity`),
        or ``None`` without ``device_memory``."""
        if self.device_memory is None:
            return None
        return allocator_capacity(parse_device_memory(self.device_memory))

    @property
    def patch_searched(self) -> bool:
        return "patch" in self.space

    def fixed_dict(self) -> dict[str, Any]:
        """The study's ``fixed`` user attribute (docs/store-schema.md)."""
        recipe = self.recipe
        fixed: dict[str, Any] = {
            "patch": list(self.fixed.patch), "batch": recipe.batch, "steps": recipe.steps,
            "precision": recipe.precision, "val_cases": self.fixed.val_cases,
            "data": self.data.path or "synthetic", "device": self.fixed.device,
            "seed": self.fixed.seed}
        for key, default in TRAINING_DEFAULTS.items():  # older stores lack them: only when set
            if getattr(recipe, key) != default:
                fixed[key] = getattr(recipe, key)
        if self.patch_searched:  # each trial's own ``patch`` attribute says which it used
            choices = [list(parse_patch(p)) for p in self.space["patch"].values()]
            fixed["patch"] = choices[0]
            fixed["patch_choices"] = choices
        return fixed

    def to_dict(self) -> dict[str, Any]:
        """The parsed file as JSON-able data (the study's ``study`` user attribute)."""
        return {
            "name": self.name, "description": self.description, "trials": self.trials,
            "objectives": list(self.objectives), "budget_bytes": self.budget_bytes,
            "device_memory": self.device_memory,
            "data": {"path": self.data.path, "convention": self.data.convention,
                     "crop": list(self.data.crop) if self.data.crop else None,
                     "synthetic_cases": self.data.synthetic_cases,
                     "synthetic_shape": list(self.data.synthetic_shape),
                     # only when set, so a study stored before spacing existed resumes unchanged
                     **({} if self.data.spacing == DataSettings.spacing else
                        {"spacing": list(self.data.spacing) if self.data.spacing else None})},
            "fixed": self.fixed_dict(),
            "recipe": self.recipe.to_dict(),
            "space": {k: d.to_dict() for k, d in self.space.items()},
            "per_level_depth": self.per_level_depth,
            "per_level_reversible": self.per_level_reversible,
            "sampler": {"name": self.sampler.name, "seed": self.sampler.seed,
                        "n_startup_trials": self.sampler.n_startup_trials,
                        "multivariate": self.sampler.multivariate,
                        "population_size": self.sampler.population_size},
            "enqueue": [{"label": e.label, "params": e.params,
                         "spec": e.spec.to_dict() if e.spec else None,
                         "patch": list(e.patch) if e.patch else None} for e in self.enqueue],
        }

    def identity(self) -> dict[str, Any]:
        """What must not change while a study is resumed: the data, fixed settings, recipe, space,
        objectives and budget (trials, sampler and description may). A store written before
        recipes existed has no ``recipe`` here; its ``fixed`` settings hold what it had of one."""
        data = self.to_dict()
        return {k: data[k] for k in ("data", "fixed", "recipe", "space", "per_level_depth",
                                     "per_level_reversible", "objectives", "budget_bytes",
                                     "device_memory")}

    def grid(self) -> dict[str, list[Any]]:
        """The parameter grid for the grid sampler (every searched dimension, per level
        where asked).

        Raises:
            RevprofError: a per-level search over a searched number of levels.
        """
        grid: dict[str, list[Any]] = {}
        levels = self.level_counts()
        for key, dim in self.space.items():
            if not dim.searched:
                continue
            per_level = ((key in DEPTH_DIMS and self.per_level_depth) or
                         (key == "reversible" and self.per_level_reversible))
            if per_level:
                continue
            grid[key] = dim.values()
        if self.per_level_depth or self.per_level_reversible:
            if len(levels) != 1:
                problem = ("needs a fixed number of levels when per_level_depth or "
                           "per_level_reversible is set")
                raise RevprofError(f"{self.path}: sampler 'grid' {problem}", field="sampler",
                                   problem=problem)
            for i in range(levels[0]):
                if self.per_level_depth:
                    for key in DEPTH_DIMS:
                        if key in self.space:
                            grid[f"{key}_{i}"] = self.space[key].values()
                if self.per_level_reversible:
                    grid[f"reversible_{i}"] = PER_LEVEL_FLAG.values()
        return grid

    def level_counts(self) -> list[int]:
        """Every number of levels the space can produce."""
        if "widths" in self.space:
            return sorted({widths_levels(str(w)) for w in self.space["widths"].values()})
        if "levels" in self.space:
            return sorted(set(self.space["levels"].values()))
        return [5]


def widths_levels(widths: str) -> int:
    """The number of levels of a canonical ``widths`` value (``"8,16,32"`` → 3)."""
    return len(widths.split(","))


def spec_for(values: Mapping[str, Any], depth: Any = None) -> ArchSpec:
    """An :class:`ArchSpec` from chosen space values (keys of :data:`SPACE_KEYS`; canonical
    forms; ``encoder_reversible``/``decoder_reversible`` flag lists allowed)."""
    arch = values.get("arch", "revunet")
    options: dict[str, Any] = {"arch": arch}
    if "widths" in values:
        options["widths"] = values["widths"]
    else:
        for key in ("levels", "width", "max_width"):
            if values.get(key) is not None:
                options[key] = values[key]
        if values.get("growth") is not None:
            options["growth"] = values["growth"]
    if values.get("groups") is not None:
        options["groups"] = values["groups"]
    if values.get("checkpoint") is not None:
        options["checkpoint"] = values["checkpoint"]
    if arch == "revunet":
        for key in ("encoder_depth", "decoder_depth"):
            if values.get(key) is not None:
                options[key] = values[key]
        base = values.get("depth", depth)
        if base is not None:
            options["depth"] = base
        if "encoder_reversible" in values:
            options["encoder_reversible"] = values["encoder_reversible"]
            options["decoder_reversible"] = values["decoder_reversible"]
        elif values.get("reversible") is not None:
            options["reversible"] = values["reversible"]
    return spec_from_options(**options)
