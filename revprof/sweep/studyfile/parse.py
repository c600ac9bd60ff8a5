"""A study file's TOML → a validated :class:`~revprof.sweep.studyfile.schema.StudyFile`.

Every rule of the format and every message lives here: each problem is one
:class:`~revprof.errors.RevprofError` naming the file, the key and the rule (``field`` is the
key, ``problem`` the rule).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from revprof import bounds
from revprof.errors import RevprofError, closest
from revprof.spec import (ARCHS, REVERSIBLE_NAMES, ArchSpec, parse_int_list, parse_patch,
                          validate_patch)
from revprof.sweep.studyfile.dims import Choice, Dim, Fixed, IntRange
from revprof.sweep.studyfile.schema import (
    DATA_KEYS, DEPTH_DIMS, DIM_MAX, FIXED_KEYS, INT_DIMS, OBJECTIVES, SAMPLER_KEYS, SAMPLERS,
    RECIPE_IN_FIXED, SPACE_KEYS, STUDY_KEYS, TABLES, DataSettings, EnqueuedTrial, FixedSettings,
    SamplerSettings, StudyFile, spec_for)
from revprof.memory.cards import parse_device_memory
from revprof.memory.device import allocator_capacity
from revprof.recipe import Recipe, recipe_from_table
from revprof.units import parse_bytes

_GRID_LIMIT = 20000
"""Above this many combinations of the shape-giving dimensions, the networks are not all built
while parsing (each trial still validates its own)."""


_MAX_NESTING = 16
"""The deepest nesting of tables and arrays a study file may have (``[[enqueue]] spec = {widths =
[...]}`` is 4 deep)."""


def read_study_file(path: str | Path) -> StudyFile:
    """Read and validate a study file.

    Raises:
        RevprofError: the file is missing, not TOML, or has an unknown key or invalid value;
            the message names the file and the key.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise RevprofError(f"study file {str(path)!r} does not exist")
    text = bounds.read_settings_text(path, "study file")  # a regular UTF-8 file, not too large
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RevprofError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:
        raise RevprofError(f"{path}: not valid TOML (tables or arrays nested too deep)") from None
    return parse_study(raw, str(path))


def parse_study(raw: Mapping[str, Any], source: str = "<study>") -> StudyFile:
    """Validate parsed TOML data (see :func:`read_study_file`)."""
    p = _Parser(source)
    if bounds.nested_deeper_than(raw, _MAX_NESTING):
        raise p.error("", f"tables and arrays nest more than {_MAX_NESTING} levels deep (a study "
                          f"file needs 4)")
    p.keys("", raw, TABLES)
    study = p.table(raw, "study", required=True)
    p.keys("study", study, STUDY_KEYS)
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
        if not isinstance(value, str):  # a bare 12 would be 12 bytes: every network over budget
            raise p.error("study.budget", f"must be a size with a unit in quotes, such as "
                          f"\"11GiB\" or \"12GB\" (\"12B\" for bytes); got {value!r}")
        try:
            budget = parse_bytes(value)
        except RevprofError as error:
            raise p.error("study.budget", str(error)) from None
        if budget <= 0:
            raise p.error("study.budget", f"must be positive; got {value!r}")
    device_memory = p.string(study, "study.device_memory")
    if device_memory is not None:
        try:
            card = allocator_capacity(parse_device_memory(device_memory))
        except RevprofError as error:
            raise p.error("study.device_memory", str(error)) from None
        if budget is None:
            budget = card.total_bytes

    data_raw = p.table(raw, "data")
    p.keys("data", data_raw, DATA_KEYS)
    data = DataSettings(
        path=p.string(data_raw, "data.path"),
        convention=_convention(p, p.string(data_raw, "data.convention")),
        crop=p.patch(data_raw, "data.crop") if "crop" in data_raw else None,
        synthetic_cases=p.integer(data_raw, "data.synthetic_cases", DataSettings.synthetic_cases, minimum=2,
                                  maximum=bounds.MAX_SYNTHETIC_CASES),
        synthetic_shape=(_synthetic_shape(p, data_raw)
                         if "synthetic_shape" in data_raw else DataSettings.synthetic_shape),
        spacing=_spacing(p, data_raw) if "spacing" in data_raw else DataSettings.spacing,
    )
    if data.path is not None and (not data.path.strip() or "\0" in data.path):
        raise p.error("data.path", f"must be a folder path; got {data.path!r}")

    fixed_raw = p.table(raw, "fixed")
    p.keys("fixed", fixed_raw, FIXED_KEYS)
    device = p.string(fixed_raw, "fixed.device") or FixedSettings.device
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and
                                                   device[5:].isdigit())):
        raise p.error("fixed.device", f"must be auto, cpu, cuda or cuda:N; got {device!r}")
    fixed = FixedSettings(
        patch=p.patch(fixed_raw, "fixed.patch") if "patch" in fixed_raw else FixedSettings.patch,
        val_cases=p.integer(fixed_raw, "fixed.val_cases", FixedSettings.val_cases, minimum=1,
                            maximum=bounds.MAX_SYNTHETIC_CASES),
        device=device,
        seed=p.integer(fixed_raw, "fixed.seed", FixedSettings.seed, minimum=0,
                       maximum=bounds.MAX_SEED),
    )
    recipe = _recipe(p, p.table(raw, "recipe"), fixed_raw)
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
    p.keys("sampler", sampler_raw, SAMPLER_KEYS)
    sampler_name = (p.string(sampler_raw, "sampler.name") or SamplerSettings.name).lower()
    if sampler_name not in SAMPLERS:
        raise p.error("sampler.name", f"must be one of {', '.join(SAMPLERS)}; got "
                      f"{sampler_name!r}{closest(sampler_name, SAMPLERS)}")
    sampler = SamplerSettings(
        name=sampler_name,
        seed=p.integer(sampler_raw, "sampler.seed", 0, minimum=0, maximum=bounds.MAX_SEED),
        n_startup_trials=(p.integer(sampler_raw, "sampler.n_startup_trials", 0, minimum=0,
                                    maximum=bounds.MAX_TRIALS)
                          if "n_startup_trials" in sampler_raw else None),
        multivariate=p.boolean(sampler_raw, "sampler.multivariate", SamplerSettings.multivariate),
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
        data=data, fixed=fixed, recipe=recipe, space=space, per_level_depth=per_level_depth,
        per_level_reversible=per_level_reversible, sampler=sampler, enqueue=(),
        description=p.string(study, "study.description") or "", device_memory=device_memory,
    )
    enqueue_raw = raw.get("enqueue", [])
    if not isinstance(enqueue_raw, list) or not all(isinstance(e, Mapping) for e in enqueue_raw):
        raise p.error("enqueue", "must be [[enqueue]] tables")
    enqueued = tuple(_parse_enqueue(p, result, i, e) for i, e in enumerate(enqueue_raw))
    result = dataclasses.replace(result, enqueue=enqueued)
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


def _spacing(p: _Parser, table: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """``[data] spacing``: one number or three (mm), or "none" to keep each case's spacing."""
    from revprof.data.resample import parse_spacing

    value = table["spacing"]
    if isinstance(value, bool) or not isinstance(value, (int, float, str, list)):
        raise p.error("data.spacing", f"must be a voxel size in mm such as 2 or [2, 2, 2], or "
                                      f"\"none\"; got {value!r}")
    if isinstance(value, (int, float)):
        value = [value] * 3
    text = value if isinstance(value, str) else ",".join(str(v) for v in value)
    try:
        return parse_spacing(text)
    except RevprofError:
        raise p.error("data.spacing", f"must be a voxel size in mm such as 2 or [2, 2, 2] (three "
                                      f"positive numbers), or \"none\"; got {value!r}") from None


def _synthetic_shape(p: _Parser, table: Mapping[str, Any]) -> tuple[int, int, int]:
    from revprof.data.synth import MIN_SIDE

    shape = p.patch(table, "data.synthetic_shape")
    if any(not MIN_SIDE <= s <= bounds.MAX_SYNTHETIC_AXIS for s in shape):
        raise p.error("data.synthetic_shape", f"sides must be from {MIN_SIDE} to "
                      f"{bounds.MAX_SYNTHETIC_AXIS}; got {table['synthetic_shape']!r}")
    return shape


def _recipe(p: _Parser, table: Mapping[str, Any], fixed: Mapping[str, Any]) -> Recipe:
    """The study's recipe: ``[recipe]`` (a ``preset``, default ``paper``, and field overrides),
    then the recipe keys of ``[fixed]`` (older study files). Errors name the table and field."""
    legacy = {key: fixed[key] for key in RECIPE_IN_FIXED if key in fixed}
    both = sorted(set(legacy) & set(table))
    if both:
        raise p.error(f"fixed.{both[0]}", "is also set in [recipe]; set it in [recipe] only")
    if legacy.get("steps") is not None and _is_int(legacy["steps"]) and legacy["steps"] < 2:
        raise p.error("fixed.steps", f"must be at least 2; got {legacy['steps']}")
    try:
        return recipe_from_table(table, source="[recipe]").with_overrides(legacy, source="[fixed]")
    except RevprofError as error:
        where = "fixed" if error.field in legacy else "recipe"
        if error.field is None or error.problem is None:
            raise p.error(where, str(error)) from None
        raise p.error(f"{where}.{error.field}", error.problem) from None


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
    if per_level_depth and not any(k in space for k in DEPTH_DIMS):
        raise p.error("space.per_level_depth", "needs space.depth, encoder_depth or decoder_depth")
    if per_level_reversible and "reversible" in space:
        raise p.error("space.per_level_reversible", "searches reversibility per level; remove "
                      "space.reversible")
    return space, per_level_depth, per_level_reversible


def _parse_dim(p: _Parser, key: str, value: Any) -> Dim:
    where = f"space.{key}"
    if isinstance(value, Mapping):
        if key not in INT_DIMS:
            raise p.error(where, f"takes a value or a list of choices, not a range; got {dict(value)!r}")
        p.keys(where, value, ("low", "high", "step", "log"))
        for bound in ("low", "high"):
            if bound not in value:
                raise p.error(f"{where}.{bound}", "is missing (a range is {low = 1, high = 4})")
        low = p.integer(value, f"{where}.low", 1, minimum=1, maximum=DIM_MAX[key])
        high = p.integer(value, f"{where}.high", 1, minimum=1, maximum=DIM_MAX[key])
        step = p.integer(value, f"{where}.step", 1, minimum=1, maximum=DIM_MAX[key])
        log = p.boolean(value, f"{where}.log", False)
        if high < low:
            raise p.error(where, f"has high={high} below low={low}")
        if log and step != 1:
            raise p.error(where, "cannot have both log = true and a step")
        if (high - low) % step:
            raise p.error(where, f"range {low}..{high} is not a whole number of steps of {step}")
        return IntRange(low, high, step, log)

    def canon(item: Any) -> Any:
        return _canonical(p, key, item, where)

    if key == "widths":
        if isinstance(value, str) or (isinstance(value, list) and value and all(_is_int(v) for v in value)):
            return Fixed(canon(value))
    elif key == "reversible":
        if isinstance(value, str) or (isinstance(value, list) and value and
                                      all(isinstance(v, (bool, int)) for v in value)):
            return Fixed(canon(value))
    elif key == "patch":
        if not isinstance(value, list):
            raise p.error(where, "must be a list of patch choices such as [96, 128] or "
                          "[128, \"160,192,160\"] (a fixed patch goes in [fixed])")
    if isinstance(value, list):
        if not value:
            raise p.error(where, "is an empty list of choices")
        choices = tuple(canon(v) for v in value)
        if len(set(choices)) != len(choices):
            raise p.error(where, f"lists a choice twice: {list(choices)!r}")
        return Choice(choices)
    return Fixed(canon(value))


def _canonical(p: _Parser, key: str, item: Any, where: str) -> Any:
    """``item`` of space key ``key`` in canonical form (patches and widths as ``"D,H,W"``)."""
    try:
        if key == "arch":
            if not isinstance(item, str) or item not in ARCHS:
                raise RevprofError(f"must be one of {', '.join(ARCHS)}; got {item!r}"
                                   f"{closest(str(item), ARCHS)}")
            return item
        if key in INT_DIMS or key == "groups":
            if not _is_int(item) or item < 1:
                hint = " (or a list, or a range {low, high})" if key in INT_DIMS else ""
                raise RevprofError(f"must be a positive whole number{hint}; got {item!r}")
            if key == "levels" and item < 2:
                raise RevprofError(f"must be at least 2; got {item}")
            if item > DIM_MAX[key]:
                raise RevprofError(f"must be at most {DIM_MAX[key]}; got {item}")
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
            widths = _parse_widths(item)
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
            if not isinstance(item, (str, list)):
                raise RevprofError(f"must be {', '.join(REVERSIBLE_NAMES)}, a per-level pattern "
                                   f"like \"1,1,0\" or a list of true/false per level; got {item!r}")
            flags = item.replace(" ", "").split(",") if isinstance(item, str) else item
            if not flags or not all(f in ("0", "1") if isinstance(f, str) else
                                    isinstance(f, (bool, int)) and f in (0, 1) for f in flags):
                raise RevprofError(f"a per-level pattern lists 0 or 1 per level; got {item!r}")
            return ",".join(f if isinstance(f, str) else str(int(f)) for f in flags)
        return _canonical_patch(item)  # the last space key: "patch"
    except RevprofError as error:
        raise p.error(where, str(error)) from None


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
        canonical = _canonical(p, base, value, f"{where}.{key}")
        if not dim.contains(canonical):
            raise p.error(f"{where}.{key}", f"= {value!r} is not in the space ({dim.describe()})")
        params[key] = canonical
    if not params:
        raise p.error(where, "gives no parameter values (or spec = {...})")
    return EnqueuedTrial(label=label, params=params)


def _param_names(study: StudyFile) -> set[str]:
    names = {k for k, d in study.space.items() if d.searched}
    if study.per_level_depth or study.per_level_reversible:
        most = max(study.level_counts())
        for key in DEPTH_DIMS:
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




def _parse_widths(value: Any) -> tuple[int, ...]:
    """``"8,16,32"`` or ``[8, 16, 32]`` as a tuple of ints (:func:`revprof.spec.parse_int_list`)."""
    if isinstance(value, int) or (isinstance(value, Sequence) and not value):
        raise RevprofError(f"widths must look like 8,16,32; got {value!r}")
    return tuple(parse_int_list("widths", value, "8,16,32"))


def _canonical_patch(value: Any) -> str:
    """A patch as the canonical ``"D,H,W"`` choice string."""
    return ",".join(str(p) for p in parse_patch(value))


