"""Study files (``studies/*.toml``): parse, validate and describe one architecture search.

A study file has these tables (only ``[study]`` and ``[space]`` are required)::

    [study]                      # name, trials, objectives, optional budget and description
    name = "quick"
    trials = 8
    objectives = ["dice", "peak_bytes"]      # optionally "seconds_per_step"
    budget = "11GiB"                          # optional memory budget

    [data]                       # where the cases come from (no path: synthetic demo cases)
    path = "data/BraTS2021"      # optional; relative to the working directory
    synthetic_cases = 8
    synthetic_shape = 48

    [fixed]                      # settings every trial shares
    patch = 32                   # or "160,192,160"
    steps = 20
    batch = 1
    precision = "fp32"
    val_cases = 2

    [space]                      # what the sampler searches: a value is fixed, a list is a
    levels = 3                   # choice, {low, high, step} an integer range
    width = [8, 16]
    depth = {low = 1, high = 2}
    reversible = ["all", "none", "encoder"]

    [sampler]
    name = "tpe"                 # tpe, nsga2, random or grid

    [[enqueue]]                  # trials to run first, by parameter values or a fixed spec
    label = "baseline"
    width = 16

Every problem is reported as one :class:`RevprofError` naming the file, the key and the rule.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revprof import bounds
from revprof.errors import RevprofError, closest
from revprof.spec import ARCHS, PRECISIONS, REVERSIBLE_NAMES, ArchSpec, parse_int_list, parse_patch, spec_from_options, validate_patch
from revprof.units import parse_bytes

OBJECTIVES = {"dice": "maximize", "peak_bytes": "minimize", "seconds_per_step": "minimize"}
"""Objectives a study file may name, with their directions."""
MEMORY_ONLY_OBJECTIVES = ("params", "peak_bytes")
"""Objectives of a memory-only study: capacity (parameters) up, predicted peak memory down."""
MEMORY_ONLY_DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "nsga2", "random", "grid")

_TABLES = ("study", "data", "fixed", "space", "sampler", "enqueue")
_STUDY_KEYS = ("name", "description", "trials", "objectives", "budget")
_DATA_KEYS = ("path", "convention", "crop", "synthetic_cases", "synthetic_shape")
_FIXED_KEYS = ("patch", "batch", "steps", "precision", "val_cases", "device", "seed", "lr",
               "schedule", "foreground")
SCHEDULES = ("constant", "poly")
TRAINING_DEFAULTS = {"lr": 1e-4, "schedule": "constant", "foreground": 0.0}
"""The paper's recipe; a study's ``fixed`` attribute lists these only when they differ."""
_SAMPLER_KEYS = ("name", "seed", "n_startup_trials", "multivariate", "population_size")
SPACE_KEYS = ("arch", "levels", "width", "widths", "growth", "max_width", "depth", "encoder_depth",
              "decoder_depth", "per_level_depth", "reversible", "per_level_reversible",
              "checkpoint", "groups", "patch")
_INT_DIMS = ("levels", "width", "max_width", "depth", "encoder_depth", "decoder_depth")
_DEPTH_DIMS = ("depth", "encoder_depth", "decoder_depth")
_GRID_LIMIT = 20000
_DIM_MAX = {"levels": bounds.MAX_LEVELS, "width": bounds.MAX_WIDTH, "max_width": bounds.MAX_WIDTH,
            "depth": bounds.MAX_DEPTH, "encoder_depth": bounds.MAX_DEPTH,
            "decoder_depth": bounds.MAX_DEPTH, "groups": bounds.MAX_WIDTH}
"""The largest value of each integer setting (see :mod:`revprof.bounds`)."""


# ---- search dimensions ---------------------------------------------------------------------
@dataclass(frozen=True)
class Dim:
    """One searchable setting: a fixed value, a categorical choice or an integer range.

    Attributes:
        kind: ``"fixed"``, ``"choice"`` or ``"int"``.
        value: the fixed value (``kind == "fixed"``).
        choices: the choices in canonical form (``kind == "choice"``): str, int, float or bool.
        low, high, step, log: the integer range (``kind == "int"``), both ends included.
    """

    kind: str
    value: Any = None
    choices: tuple[Any, ...] = ()
    low: int = 0
    high: int = 0
    step: int = 1
    log: bool = False

    @property
    def searched(self) -> bool:
        """True when the sampler picks the value (a choice of several, or a range)."""
        return self.kind == "int" or (self.kind == "choice" and len(self.choices) > 1)

    @property
    def count(self) -> int:
        """How many values this dimension can take (without listing them)."""
        if self.kind == "fixed":
            return 1
        if self.kind == "choice":
            return len(self.choices)
        return (self.high - self.low) // self.step + 1

    def values(self) -> list[Any]:
        """Every value this dimension can take."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "choice":
            return list(self.choices)
        return list(range(self.low, self.high + 1, self.step))

    def suggest(self, trial: Any, name: str) -> Any:
        """The value for ``trial``; the only place that calls ``trial.suggest_*``."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "choice":
            if len(self.choices) == 1:
                return self.choices[0]
            return trial.suggest_categorical(name, list(self.choices))
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (canonical form) is one this dimension can take."""
        if self.kind == "int":
            return (isinstance(value, int) and not isinstance(value, bool) and
                    self.low <= value <= self.high and (value - self.low) % self.step == 0)
        return value in self.values()

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "fixed":
            return {"fixed": self.value}
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "step": self.step, "log": self.log}


# ---- the parsed study file -----------------------------------------------------------------
@dataclass(frozen=True)
class DataSettings:
    """Where the training cases come from; ``path`` None means synthetic demo cases."""

    path: str | None = None
    convention: str | None = None
    crop: tuple[int, int, int] | None = None
    synthetic_cases: int = 8
    synthetic_shape: tuple[int, int, int] = (64, 64, 64)


@dataclass(frozen=True)
class FixedSettings:
    """Settings every trial shares (the patch may instead be searched in ``[space]``)."""

    patch: tuple[int, int, int] = (128, 128, 128)
    batch: int = 1
    steps: int = 100
    precision: str = "fp32"
    val_cases: int = 2
    device: str = "auto"
    seed: int = 0
    lr: float = 1e-4
    schedule: str = "constant"
    foreground: float = 0.0


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
        budget_bytes: the memory budget, or None.
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
    space: dict[str, Dim]
    per_level_depth: bool
    per_level_reversible: bool
    sampler: SamplerSettings
    enqueue: tuple[EnqueuedTrial, ...]
    description: str = ""

    # ---- derived ----------------------------------------------------------------------------
    def study_name(self, memory_only: bool) -> str:
        """The Optuna study name: memory-only runs keep their own study (other objectives)."""
        return f"{self.name}-memory" if memory_only else self.name

    def objective_names(self, memory_only: bool) -> tuple[str, ...]:
        return MEMORY_ONLY_OBJECTIVES if memory_only else self.objectives

    def directions(self, memory_only: bool) -> list[str]:
        if memory_only:
            return list(MEMORY_ONLY_DIRECTIONS)
        return [OBJECTIVES[o] for o in self.objectives]

    @property
    def patch_searched(self) -> bool:
        return "patch" in self.space

    def fixed_dict(self) -> dict[str, Any]:
        """The study's ``fixed`` user attribute (docs/store-schema.md)."""
        fixed: dict[str, Any] = {
            "patch": list(self.fixed.patch), "batch": self.fixed.batch, "steps": self.fixed.steps,
            "precision": self.fixed.precision, "val_cases": self.fixed.val_cases,
            "data": self.data.path or "synthetic", "device": self.fixed.device,
            "seed": self.fixed.seed}
        for key, default in TRAINING_DEFAULTS.items():  # older stores lack them: only when set
            if getattr(self.fixed, key) != default:
                fixed[key] = getattr(self.fixed, key)
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
            "data": {"path": self.data.path, "convention": self.data.convention,
                     "crop": list(self.data.crop) if self.data.crop else None,
                     "synthetic_cases": self.data.synthetic_cases,
                     "synthetic_shape": list(self.data.synthetic_shape)},
            "fixed": self.fixed_dict(),
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
        """What must not change while a study is resumed: the data, fixed settings, space,
        objectives and budget (trials, sampler and description may)."""
        data = self.to_dict()
        return {k: data[k] for k in ("data", "fixed", "space", "per_level_depth",
                                     "per_level_reversible", "objectives", "budget_bytes")}

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
            per_level = ((key in _DEPTH_DIMS and self.per_level_depth) or
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
                    for key in _DEPTH_DIMS:
                        if key in self.space:
                            grid[f"{key}_{i}"] = self.space[key].values()
                if self.per_level_reversible:
                    grid[f"reversible_{i}"] = [True, False]
        return grid

    def level_counts(self) -> list[int]:
        """Every number of levels the space can produce."""
        if "widths" in self.space:
            return sorted({len(parse_widths(w)) for w in self.space["widths"].values()})
        if "levels" in self.space:
            return sorted(set(self.space["levels"].values()))
        return [5]


def parse_widths(value: Any) -> tuple[int, ...]:
    """``"8,16,32"`` or ``[8, 16, 32]`` as a tuple of ints (:func:`revprof.spec.parse_int_list`)."""
    if isinstance(value, int) or (isinstance(value, Sequence) and not value):
        raise RevprofError(f"widths must look like 8,16,32; got {value!r}")
    return tuple(parse_int_list("widths", value, "8,16,32"))


def canonical_patch(value: Any) -> str:
    """A patch as the canonical ``"D,H,W"`` choice string."""
    return ",".join(str(p) for p in parse_patch(value))


# ---- loading --------------------------------------------------------------------------------
def read_study_file(path: str | Path) -> StudyFile:
    """Read and validate a study file.

    Raises:
        RevprofError: the file is missing, not TOML, or has an unknown key or invalid value;
            the message names the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise RevprofError(f"study file {str(path)!r} does not exist"
                           + (" (it is a directory)" if path.is_dir() else ""))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise RevprofError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise RevprofError(f"{path}: not a UTF-8 text file") from None
    return parse_study(raw, str(path))


def parse_study(raw: Mapping[str, Any], source: str = "<study>") -> StudyFile:
    """Validate parsed TOML data (see :func:`read_study_file`)."""
    p = _Parser(source)
    p.keys("", raw, _TABLES)
    study = p.table(raw, "study", required=True)
    p.keys("study", study, _STUDY_KEYS)
    name = p.string(study, "study.name", required=True)
    if not name or any(c.isspace() or c in "/\\" for c in name):
        raise p.error("study.name", f"must be a non-empty name without spaces or slashes; got {name!r}")
    try:
        bounds.check_name("study.name", name)
    except RevprofError as error:
        raise p.error("", str(error)) from None
    trials = p.integer(study, "study.trials", 10, minimum=1, maximum=bounds.MAX_TRIALS)
    objectives = study.get("objectives", ["dice", "peak_bytes"])
    if (isinstance(objectives, str) or not isinstance(objectives, list) or
            not all(isinstance(o, str) for o in objectives)):
        raise p.error("study.objectives", f"must be a list such as [\"dice\", \"peak_bytes\"]; "
                      f"got {objectives!r}")
    for objective in objectives:
        if objective not in OBJECTIVES:
            raise p.error("study.objectives", f"unknown objective {objective!r}; use "
                          f"{', '.join(OBJECTIVES)}{closest(objective, OBJECTIVES)}")
    if len(set(objectives)) != len(objectives):
        raise p.error("study.objectives", f"names an objective twice: {objectives!r}")
    if "dice" not in objectives or "peak_bytes" not in objectives:
        raise p.error("study.objectives", f"must include \"dice\" and \"peak_bytes\" (optionally "
                      f"\"seconds_per_step\"); got {objectives!r}")
    budget = None
    if "budget" in study:
        value = study["budget"]
        if _is_int(value):
            budget = value
        else:
            try:
                budget = parse_bytes(value)
            except RevprofError as error:
                raise p.error("study.budget", str(error)) from None
        if budget <= 0:
            raise p.error("study.budget", f"must be positive; got {value!r}")

    data_raw = p.table(raw, "data")
    p.keys("data", data_raw, _DATA_KEYS)
    data = DataSettings(
        path=p.string(data_raw, "data.path"),
        convention=_convention(p, p.string(data_raw, "data.convention")),
        crop=p.patch(data_raw, "data.crop") if "crop" in data_raw else None,
        synthetic_cases=p.integer(data_raw, "data.synthetic_cases", 8, minimum=2,
                                  maximum=bounds.MAX_SYNTHETIC_CASES),
        synthetic_shape=(_synthetic_shape(p, data_raw)
                         if "synthetic_shape" in data_raw else (64, 64, 64)),
    )
    if data.path is not None and (not data.path.strip() or "\0" in data.path):
        raise p.error("data.path", f"must be a folder path; got {data.path!r}")

    fixed_raw = p.table(raw, "fixed")
    p.keys("fixed", fixed_raw, _FIXED_KEYS)
    precision = p.string(fixed_raw, "fixed.precision") or "fp32"
    if precision not in PRECISIONS:
        raise p.error("fixed.precision", f"must be one of {', '.join(PRECISIONS)}; got "
                      f"{precision!r}{closest(precision, PRECISIONS)}")
    device = p.string(fixed_raw, "fixed.device") or "auto"
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and
                                                   device[5:].isdigit())):
        raise p.error("fixed.device", f"must be auto, cpu, cuda or cuda:N; got {device!r}")
    fixed = FixedSettings(
        patch=p.patch(fixed_raw, "fixed.patch") if "patch" in fixed_raw else (128, 128, 128),
        batch=p.integer(fixed_raw, "fixed.batch", 1, minimum=1, maximum=bounds.MAX_BATCH),
        steps=p.integer(fixed_raw, "fixed.steps", 100, minimum=2, maximum=bounds.MAX_STEPS),
        precision=precision,
        val_cases=p.integer(fixed_raw, "fixed.val_cases", 2, minimum=1,
                            maximum=bounds.MAX_SYNTHETIC_CASES),
        device=device,
        seed=p.integer(fixed_raw, "fixed.seed", 0, minimum=0, maximum=bounds.MAX_SEED),
        lr=_fraction(p, fixed_raw, "fixed.lr", 1e-4, low=0.0, high=1.0, open_low=True),
        schedule=p.string(fixed_raw, "fixed.schedule") or "constant",
        foreground=_fraction(p, fixed_raw, "fixed.foreground", 0.0, low=0.0, high=1.0),
    )
    if fixed.schedule not in SCHEDULES:
        raise p.error("fixed.schedule", f"must be one of {', '.join(SCHEDULES)}; got "
                      f"{fixed.schedule!r}{closest(fixed.schedule, SCHEDULES)}")
    if data.path is None and fixed.val_cases >= data.synthetic_cases:
        raise p.error("fixed.val_cases", f"= {fixed.val_cases} leaves no training case among "
                      f"data.synthetic_cases={data.synthetic_cases}")

    space_raw = p.table(raw, "space", required=True)
    p.keys("space", space_raw, SPACE_KEYS)
    if "patch" in space_raw and "patch" in fixed_raw:
        raise p.error("space.patch", "the patch is either fixed ([fixed] patch) or searched "
                      "([space] patch), not both")
    space, per_level_depth, per_level_reversible = _parse_space(p, space_raw)

    sampler_raw = p.table(raw, "sampler")
    p.keys("sampler", sampler_raw, _SAMPLER_KEYS)
    sampler_name = (p.string(sampler_raw, "sampler.name") or "tpe").lower()
    if sampler_name not in SAMPLERS:
        raise p.error("sampler.name", f"must be one of {', '.join(SAMPLERS)}; got "
                      f"{sampler_name!r}{closest(sampler_name, SAMPLERS)}")
    sampler = SamplerSettings(
        name=sampler_name,
        seed=p.integer(sampler_raw, "sampler.seed", 0, minimum=0, maximum=bounds.MAX_SEED),
        n_startup_trials=(p.integer(sampler_raw, "sampler.n_startup_trials", 0, minimum=0,
                                    maximum=bounds.MAX_TRIALS)
                          if "n_startup_trials" in sampler_raw else None),
        multivariate=p.boolean(sampler_raw, "sampler.multivariate", True),
        population_size=(p.integer(sampler_raw, "sampler.population_size", 0, minimum=2,
                                   maximum=bounds.MAX_TRIALS)
                         if "population_size" in sampler_raw else None),
    )
    for key, allowed in (("n_startup_trials", "tpe"), ("multivariate", "tpe"),
                         ("population_size", "nsga2")):
        if key in sampler_raw and sampler_name != allowed:
            raise p.error(f"sampler.{key}", f"applies to sampler {allowed!r} only; this study "
                          f"uses {sampler_name!r}")

    result = StudyFile(
        name=name, path=source, trials=trials, objectives=tuple(objectives), budget_bytes=budget,
        data=data, fixed=fixed, space=space, per_level_depth=per_level_depth,
        per_level_reversible=per_level_reversible, sampler=sampler, enqueue=(),
        description=p.string(study, "study.description") or "",
    )
    enqueue_raw = raw.get("enqueue", [])
    if not isinstance(enqueue_raw, list) or not all(isinstance(e, Mapping) for e in enqueue_raw):
        raise p.error("enqueue", "must be [[enqueue]] tables")
    enqueued = tuple(_parse_enqueue(p, result, i, e) for i, e in enumerate(enqueue_raw))
    result = StudyFile(**{**result.__dict__, "enqueue": enqueued})
    _check_space(p, result)
    if sampler_name == "grid":
        try:
            size = math.prod(len(v) for v in result.grid().values())
        except RevprofError as error:
            raise p.error("sampler.name", error.problem or str(error)) from None
        if size < 1:
            raise p.error("sampler.name", "the grid is empty")
    return result


# ---- helpers ---------------------------------------------------------------------------------
class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, problem: str) -> RevprofError:
        return RevprofError(f"{self.source}: {key} {problem}" if key else f"{self.source}: {problem}",
                            field=key or None, problem=problem)

    def keys(self, where: str, table: Mapping[str, Any], allowed: Sequence[str]) -> None:
        for key in table:
            if key not in allowed:
                name = f"{where}.{key}" if where else f"[{key}]"
                raise self.error(name, f"is not a known key; known: {', '.join(allowed)}"
                                 f"{closest(str(key), allowed)}")

    def table(self, raw: Mapping[str, Any], key: str, required: bool = False) -> Mapping[str, Any]:
        if key not in raw:
            if required:
                raise self.error(f"[{key}]", "table is missing")
            return {}
        value = raw[key]
        if not isinstance(value, Mapping):
            raise self.error(f"[{key}]", f"must be a table; got {value!r}")
        return value

    def string(self, table: Mapping[str, Any], key: str, required: bool = False) -> str | None:
        name = key.rsplit(".", 1)[-1]
        if name not in table:
            if required:
                raise self.error(key, "is missing")
            return None
        value = table[name]
        if not isinstance(value, str):
            raise self.error(key, f"must be a string; got {value!r}")
        return value

    def integer(self, table: Mapping[str, Any], key: str, default: int, minimum: int,
                maximum: int | None = None) -> int:
        name = key.rsplit(".", 1)[-1]
        value = table.get(name, default)
        if not _is_int(value):
            raise self.error(key, f"must be a whole number; got {value!r}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}; got {value}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be at most {maximum}; got {value}")
        return value

    def boolean(self, table: Mapping[str, Any], key: str, default: bool) -> bool:
        name = key.rsplit(".", 1)[-1]
        value = table.get(name, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false; got {value!r}")
        return value

    def patch(self, table: Mapping[str, Any], key: str) -> tuple[int, int, int]:
        value = table[key.rsplit(".", 1)[-1]]
        try:
            return parse_patch(value)
        except RevprofError as error:
            raise self.error(key, str(error).replace("patch ", "", 1)) from None


def _convention(p: _Parser, name: str | None) -> str | None:
    if name is None:
        return None
    from revprof.data.conventions import get_convention

    try:
        return get_convention(name).name
    except RevprofError as error:
        raise p.error("data.convention", str(error)) from None


def _synthetic_shape(p: _Parser, table: Mapping[str, Any]) -> tuple[int, int, int]:
    from revprof.data.synth import MIN_SIDE

    shape = p.patch(table, "data.synthetic_shape")
    if any(not MIN_SIDE <= s <= bounds.MAX_SYNTHETIC_AXIS for s in shape):
        raise p.error("data.synthetic_shape", f"sides must be from {MIN_SIDE} to "
                      f"{bounds.MAX_SYNTHETIC_AXIS}; got {table['synthetic_shape']!r}")
    return shape


def _fraction(p: _Parser, table: Mapping[str, Any], key: str, default: float, low: float,
              high: float, open_low: bool = False) -> float:
    value = table.get(key.rsplit(".", 1)[-1], default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise p.error(key, f"must be a number; got {value!r}")
    if value > high or value < low or (open_low and value == low):
        bound = f"> {low}" if open_low else f">= {low}"
        raise p.error(key, f"must be {bound} and <= {high}; got {value}")
    return float(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_space(p: _Parser, raw: Mapping[str, Any]) -> tuple[dict[str, Dim], bool, bool]:
    space: dict[str, Dim] = {}
    per_level_depth = p.boolean(raw, "space.per_level_depth", False)
    per_level_reversible = p.boolean(raw, "space.per_level_reversible", False)
    for key, value in raw.items():
        if key in ("per_level_depth", "per_level_reversible"):
            continue
        space[key] = _parse_dim(p, key, value)
    if "widths" in space:
        for other in ("width", "levels", "growth", "max_width"):
            if other in space:
                raise p.error(f"space.{other}", "cannot be combined with space.widths (explicit "
                              "widths fix the levels and the width of each)")
    if "depth" in space and ("encoder_depth" in space and "decoder_depth" in space):
        raise p.error("space.depth", "is unused when encoder_depth and decoder_depth are both given")
    if per_level_depth and not any(k in space for k in _DEPTH_DIMS):
        raise p.error("space.per_level_depth", "needs space.depth, encoder_depth or decoder_depth")
    if per_level_reversible and "reversible" in space:
        raise p.error("space.per_level_reversible", "searches reversibility per level; remove "
                      "space.reversible")
    return space, per_level_depth, per_level_reversible


def _parse_dim(p: _Parser, key: str, value: Any) -> Dim:
    where = f"space.{key}"
    if isinstance(value, Mapping):
        if key not in _INT_DIMS:
            raise p.error(where, f"takes a value or a list of choices, not a range; got {dict(value)!r}")
        p.keys(where, value, ("low", "high", "step", "log"))
        for bound in ("low", "high"):
            if bound not in value:
                raise p.error(f"{where}.{bound}", "is missing (a range is {low = 1, high = 4})")
        low = p.integer(value, f"{where}.low", 1, minimum=1, maximum=_DIM_MAX[key])
        high = p.integer(value, f"{where}.high", 1, minimum=1, maximum=_DIM_MAX[key])
        step = p.integer(value, f"{where}.step", 1, minimum=1, maximum=_DIM_MAX[key])
        log = p.boolean(value, f"{where}.log", False)
        if high < low:
            raise p.error(where, f"has high={high} below low={low}")
        if log and step != 1:
            raise p.error(where, "cannot have both log = true and a step")
        if (high - low) % step:
            raise p.error(where, f"range {low}..{high} is not a whole number of steps of {step}")
        return Dim("int", low=low, high=high, step=step, log=log)

    def canon(item: Any, as_choice: bool) -> Any:
        return _canonical(p, key, item, where, as_choice)

    if key == "widths":
        if isinstance(value, str) or (isinstance(value, list) and value and all(_is_int(v) for v in value)):
            return Dim("fixed", value=canon(value, False))
    elif key == "reversible":
        if isinstance(value, str) or (isinstance(value, list) and value and
                                      all(isinstance(v, (bool, int)) for v in value)):
            return Dim("fixed", value=canon(value, False))
    elif key == "patch":
        if not isinstance(value, list):
            raise p.error(where, "must be a list of patch choices such as [96, 128] or "
                          "[128, \"160,192,160\"] (a fixed patch goes in [fixed])")
    if isinstance(value, list):
        if not value:
            raise p.error(where, "is an empty list of choices")
        choices = tuple(canon(v, True) for v in value)
        if len(set(choices)) != len(choices):
            raise p.error(where, f"lists a choice twice: {list(choices)!r}")
        return Dim("choice", choices=choices)
    return Dim("fixed", value=canon(value, False))


def _canonical(p: _Parser, key: str, item: Any, where: str, as_choice: bool) -> Any:
    try:
        if key == "arch":
            if not isinstance(item, str) or item not in ARCHS:
                raise RevprofError(f"must be one of {', '.join(ARCHS)}; got {item!r}"
                                   f"{closest(str(item), ARCHS)}")
            return item
        if key in _INT_DIMS or key == "groups":
            if not _is_int(item) or item < 1:
                hint = " (or a list, or a range {low, high})" if key in _INT_DIMS else ""
                raise RevprofError(f"must be a positive whole number{hint}; got {item!r}")
            if key == "levels" and item < 2:
                raise RevprofError(f"must be at least 2; got {item}")
            if item > _DIM_MAX[key]:
                raise RevprofError(f"must be at most {_DIM_MAX[key]}; got {item}")
            return item
        if key == "growth":
            if isinstance(item, bool) or not isinstance(item, (int, float)) or item < 1:
                raise RevprofError(f"must be a number of at least 1; got {item!r}")
            return bounds.check_float("growth", item, 1.0, bounds.MAX_GROWTH)
        if key == "checkpoint":
            if not isinstance(item, bool):
                raise RevprofError(f"must be true or false (or [true, false]); got {item!r}")
            return item
        if key == "widths":
            widths = parse_widths(item)
            if any(w < 1 for w in widths) or len(widths) < 2:
                raise RevprofError(f"must list at least 2 positive widths; got {item!r}")
            return ",".join(map(str, widths))
        if key == "reversible":
            if isinstance(item, str) and not item.replace(",", "").replace(" ", "").isdigit():
                if item not in REVERSIBLE_NAMES:
                    raise RevprofError(f"must be {', '.join(REVERSIBLE_NAMES)} or a per-level "
                                       f"pattern like \"1,1,0\"; got {item!r}"
                                       f"{closest(item, REVERSIBLE_NAMES)}")
                return item
            flags = item.replace(" ", "").split(",") if isinstance(item, str) else list(item)
            if not flags or any(str(int(f)) not in ("0", "1") if not isinstance(f, str)
                                else f not in ("0", "1") for f in flags):
                raise RevprofError(f"a per-level pattern lists 0 or 1 per level; got {item!r}")
            return ",".join(str(int(f)) if not isinstance(f, str) else f for f in flags)
        if key == "patch":
            return canonical_patch(item)
    except RevprofError as error:
        raise p.error(where, str(error)) from None
    raise p.error(where, f"has an unsupported value {item!r}")  # pragma: no cover


def _parse_enqueue(p: _Parser, study: StudyFile, index: int, raw: Mapping[str, Any]) -> EnqueuedTrial:
    where = f"enqueue[{index}]"
    label = raw.get("label")
    if label is not None and not isinstance(label, str):
        raise p.error(f"{where}.label", f"must be a string; got {label!r}")
    if "spec" in raw:
        extra = [k for k in raw if k not in ("spec", "patch", "label")]
        if extra:
            raise p.error(f"{where}.{extra[0]}", "cannot be combined with a fixed spec (an "
                          "[[enqueue]] gives either parameter values or spec = {...}, "
                          "plus optional patch and label)")
        try:
            spec = ArchSpec.from_dict(raw["spec"])
        except RevprofError as error:
            raise p.error(f"{where}.spec", str(error)) from None
        patch = None
        if "patch" in raw:
            patch = p.patch(raw, f"{where}.patch")
            try:
                validate_patch(spec, patch)
            except RevprofError as error:
                raise p.error(f"{where}.patch", str(error)) from None
        return EnqueuedTrial(label=label, spec=spec, patch=patch)
    params: dict[str, Any] = {}
    allowed = _param_names(study)
    for key, value in raw.items():
        if key == "label":
            continue
        base = key.rsplit("_", 1)[0] if key[-1:].isdigit() else key
        if key not in allowed:
            raise p.error(f"{where}.{key}", f"is not a searched parameter of this study; "
                          f"searched: {', '.join(sorted(allowed)) or 'none'}"
                          f"{closest(key, sorted(allowed))}")
        if key.startswith("reversible_"):
            if not isinstance(value, bool):
                raise p.error(f"{where}.{key}", f"must be true or false; got {value!r}")
            params[key] = value
            continue
        dim = study.space[base]
        canonical = _canonical(p, base, value, f"{where}.{key}", True)
        if not dim.contains(canonical):
            shown = (f"{dim.low}..{dim.high}" if dim.kind == "int"
                     else ", ".join(repr(v) for v in dim.values()))
            raise p.error(f"{where}.{key}", f"= {value!r} is not in the space ({shown})")
        params[key] = canonical
    if not params:
        raise p.error(where, "gives no parameter values (or spec = {...})")
    return EnqueuedTrial(label=label, params=params)


def _param_names(study: StudyFile) -> set[str]:
    names = {k for k, d in study.space.items() if d.searched}
    if study.per_level_depth or study.per_level_reversible:
        most = max(study.level_counts())
        for key in _DEPTH_DIMS:
            if key in names and study.per_level_depth:
                names.discard(key)
                names.update(f"{key}_{i}" for i in range(most))
        if study.per_level_reversible:
            names.update(f"reversible_{i}" for i in range(most))
    return names


def _check_space(p: _Parser, study: StudyFile) -> None:
    """Build one network for each combination of the shape-giving dimensions, so a space
    that yields invalid networks or patches is reported before any trial runs."""
    space = study.space
    shape_keys = [k for k in ("arch", "levels", "width", "widths", "growth", "max_width",
                              "reversible", "groups", "patch") if k in space]
    combos = math.prod(space[k].count for k in shape_keys) if shape_keys else 1
    if combos > _GRID_LIMIT:
        return
    archs = space["arch"].values() if "arch" in space else ["revunet"]
    if "reversible" in space and all(a == "nonewnet" for a in archs):
        if any(r != "none" for r in space["reversible"].values()):
            raise p.error("space.reversible", "applies to arch 'revunet' only; this space "
                          "searches nonewnet (use reversible = \"none\" or leave it out)")
    for values in itertools.product(*(space[k].values() for k in shape_keys)):
        combo = dict(zip(shape_keys, values, strict=True))
        try:
            spec = spec_for(combo, depth=1)
            patch = parse_patch(combo["patch"]) if "patch" in combo else study.fixed.patch
            validate_patch(spec, patch)
        except RevprofError as error:
            shown = ", ".join(f"{k}={v!r}" for k, v in combo.items()) or "the defaults"
            raise p.error("[space]", f"{shown} gives an invalid network: {error}") from None


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
