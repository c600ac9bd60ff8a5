"""What one trial stores in its user attributes (``docs/store-schema.md``), as one typed record.

The objective writes a :class:`TrialRecord` field by field as the trial goes (so an interrupted
trial keeps what it had); the sweep's front, the report and ``revprof measure``'s results row
read it back with :meth:`TrialRecord.from_user_attrs`. Stored names and values are the schema's:
a field is stored under its own name, ``None`` means absent, and attributes this module does not
know (written by another revprof version) are kept in :attr:`TrialRecord.extra`, so old stores
open and a record written back is unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("ok", "infeasible", "oom", "diverged", "failed", "interrupted")
"""Final trial statuses (``running`` while a trial is under way)."""


@dataclass
class TrialRecord:
    """A trial's user attributes, one typed field per key of ``docs/store-schema.md``.

    Sizes are bytes, times seconds; ``patch`` is ``[D, H, W]``; ``dice`` is
    ``{"wt", "tc", "et", "mean"}``. Every field is optional: ``None`` where the trial has not
    (yet) recorded it.
    """

    spec: dict[str, Any] | None = None
    spec_words: str | None = None
    patch: list[int] | None = None
    batch: int | None = None
    precision: str | None = None
    recipe: dict[str, Any] | None = None
    status: str | None = None
    label: str | None = None
    worker: dict[str, Any] | None = None
    heartbeat: float | None = None  # written by revprof.sweep.heartbeat while the trial runs
    budget_bytes: int | None = None
    predicted_peak_bytes: int | None = None
    predicted_reserved_bytes: int | None = None
    breakdown: dict[str, int] | None = None
    activations_by_part: dict[str, int] | None = None
    params: int | None = None
    predict_seconds: float | None = None
    peak_bytes: int | None = None
    dice: dict[str, float] | None = None
    dice_per_case: list[dict[str, Any]] | None = None
    seconds_per_step: float | None = None
    voxels_per_second: float | None = None
    losses: list[float | None] | None = None
    steps_done: int | None = None
    device: str | None = None
    environment: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    weight_key: str | None = None
    training: str | None = None
    dice_from: int | None = None
    train_seconds: float | None = None
    source_train_seconds: float | None = None
    measure_steps: int | None = None
    duplicate_of: int | None = None
    progress: dict[str, Any] | None = None
    requeued_from: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_user_attrs(cls, attrs: Mapping[str, Any]) -> TrialRecord:
        """The record of a trial's ``user_attrs`` (any revprof version's: unknown keys go to
        :attr:`extra`, missing ones are ``None``). Values are taken as stored."""
        names = _FIELDS
        known = {k: v for k, v in attrs.items() if k in names}
        extra = {k: v for k, v in attrs.items() if k not in names}
        return cls(**known, extra=extra)

    def to_user_attrs(self) -> dict[str, Any]:
        """The user attributes this record stores: each set field under its name (JSON values),
        then :attr:`extra`."""
        attrs = {name: jsonable(getattr(self, name)) for name in _FIELDS
                 if getattr(self, name) is not None}
        return {**attrs, **self.extra}

    def has(self, name: str) -> bool:
        """Whether the trial recorded ``name`` (a field or an unknown attribute)."""
        if name in _FIELDS:
            return getattr(self, name) is not None
        return name in self.extra

    @property
    def dice_mean(self) -> float | None:
        """The mean Dice, or None when the trial has none."""
        value = (self.dice or {}).get("mean")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None

    def result_columns(self) -> dict[str, Any]:
        """The record as columns of a results table (``revprof measure --steps``; read back by
        ``revprof report --results``): ``spec`` and ``recipe`` as canonical JSON, ``patch`` as ``D,H,W``, the
        Dice as ``dice_wt``/``dice_tc``/``dice_et``/``dice_mean``; ``None`` where absent."""
        dice = self.dice or {}
        spec, recipe = (None if value is None else
                        json.dumps(value, sort_keys=True, separators=(",", ":"))
                        for value in (self.spec, self.recipe))
        return {
            "spec": spec, "spec_words": self.spec_words,
            "patch": None if self.patch is None else ",".join(map(str, self.patch)),
            "batch": self.batch, "precision": self.precision, "recipe": recipe,
            "status": self.status,
            "peak_bytes": self.peak_bytes, "predicted_peak_bytes": self.predicted_peak_bytes,
            "dice_wt": dice.get("wt"), "dice_tc": dice.get("tc"), "dice_et": dice.get("et"),
            "dice_mean": dice.get("mean"), "seconds_per_step": self.seconds_per_step,
            "voxels_per_second": self.voxels_per_second, "device": self.device,
            "dice_per_case": self.dice_per_case, "environment": self.environment,
            "error": self.error,
        }

    @classmethod
    def from_result_columns(cls, columns: Mapping[str, Any]) -> TrialRecord:
        """The record of one results-table row: the inverse of :meth:`result_columns` (``spec``
        JSON text decoded, ``dice_wt``/``dice_tc``/``dice_et``/``dice_mean`` gathered into
        :attr:`dice`), and a ``params`` column. Missing cells (None, NaN, empty text) are
        ``None``; other values are taken as read (``patch`` may be ``D,H,W`` text; the reader
        checks them). The nested columns ``dice_per_case`` and ``environment`` (text in a CSV
        file) and columns of the run's settings go to :attr:`extra`.

        Raises:
            json.JSONDecodeError: ``spec`` or ``recipe`` is text that is not JSON.
        """
        values = {str(k): missing_as_none(v) for k, v in columns.items()}
        spec, recipe = (values.pop(key, None) for key in ("spec", "recipe"))
        spec, recipe = (json.loads(v) if isinstance(v, str) else v for v in (spec, recipe))
        dice = {region: values.pop(f"dice_{region}", None) for region in DICE_KEYS}
        known = {name: values.pop(name) for name in _RESULT_FIELDS if name in values}
        return cls(spec=spec, recipe=recipe,
                   dice=dice if any(v is not None for v in dice.values()) else None,
                   **known, extra=values)

    @property
    def dice_regions(self) -> tuple[Any, Any, Any, Any] | None:
        """The stored Dice of WT, TC, ET and their mean (``None`` for a missing one), or
        ``None`` when the trial has no Dice."""
        if self.dice is None:
            return None
        wt, tc, et, mean = (self.dice.get(k) for k in DICE_KEYS)
        return wt, tc, et, mean

    @property
    def patch_text(self) -> str:
        """``128×128×128`` (empty when no patch was recorded)."""
        return "×".join(str(p) for p in self.patch or [])


_FIELDS = tuple(f.name for f in dataclasses.fields(TrialRecord) if f.name != "extra")
FIELDS = _FIELDS
"""The user-attribute names a :class:`TrialRecord` has a field for."""

DICE_KEYS = ("wt", "tc", "et", "mean")
"""The keys of :attr:`TrialRecord.dice`: the regions, then their mean."""

_RESULT_FIELDS = ("spec_words", "patch", "batch", "precision", "status", "peak_bytes",
                  "predicted_peak_bytes", "params", "seconds_per_step", "voxels_per_second",
                  "device", "error")
"""Fields a results table holds in a column of their own name (:meth:`TrialRecord.result_columns`)."""


def missing_as_none(value: Any) -> Any:
    """``None`` for a missing table cell (``None``, NaN, empty or blank text), else ``value``."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def record_of(trial: Any) -> TrialRecord:
    """The :class:`TrialRecord` of an Optuna trial (``FrozenTrial`` or live ``Trial``)."""
    return TrialRecord.from_user_attrs(trial.user_attrs)


class TrialWriter:
    """Writes a :class:`TrialRecord` into a live trial field by field, as the trial goes.

    ``writer.set(status="ok", peak_bytes=...)`` stores each value at once under its field name
    (so the store shows progress and an interrupted trial keeps what it had) and keeps it in
    :attr:`record`. An unknown name is a programming error (TypeError), never a new key.
    """

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.record = TrialRecord()

    def set(self, **values: Any) -> None:
        for name, value in values.items():
            if name not in _FIELDS:
                raise TypeError(f"TrialRecord has no field {name!r}")
            self.trial.set_user_attr(name, jsonable(value))
            setattr(self.record, name, value)

    def copy(self, source: TrialRecord, names: tuple[str, ...]) -> None:
        """Store ``source``'s value of each of ``names`` that it recorded."""
        self.set(**{n: getattr(source, n) for n in names if source.has(n)})


def jsonable(value: Any) -> Any:
    """``value`` as a JSON value Optuna stores: non-finite floats become None, tuples lists,
    numpy/torch scalars Python numbers, anything else its text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)
