"""Load what a report shows: the trials of an Optuna study, or the rows of a results table.

Both sources become one :class:`Source` holding typed :class:`TrialRow` s, so everything after
loading is the same for a sweep's store (``docs/store-schema.md``) and a ``revprof measure
--steps`` results file: a stored trial and a results row are both read as a
:class:`~revprof.sweep.record.TrialRecord` first (``record_of``, ``from_result_columns``) and
checked into a row by one function, :func:`trial_row`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from revprof.errors import RevprofError, first_line
from revprof.recipe import PAPER, Recipe, recipe_or_paper
from revprof.redaction import redact_url
from revprof.spec import ArchSpec
from revprof.sweep.record import DICE_KEYS, TrialRecord, missing_as_none, record_of
from revprof.sweep.storage import DEFAULT_JOURNAL, load_study

REQUIRED_COLUMNS = ("spec", "peak_bytes")
RESULT_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")


class Dice(NamedTuple):
    """Mean Dice over the validation cases, per region and their mean."""

    wt: float
    tc: float
    et: float
    mean: float


@dataclass(frozen=True)
class TrialRow:
    """One trial of a study, or one row of a results table, as the report uses it: the trial's
    :class:`~revprof.sweep.record.TrialRecord` checked (an :class:`ArchSpec`, a ``(D, H, W)``
    patch, a :class:`Dice`, whole byte counts) by :func:`trial_row`, with what Optuna keeps
    beside it (number, state, completion time).

    ``number`` is the Optuna trial number (results rows: the row index). ``state`` is Optuna's
    trial state name (``ROW`` for a results row); ``status`` the revprof status of the schema.
    Sizes are bytes; ``None`` where the store holds nothing.
    """

    number: int
    state: str
    status: str
    spec: ArchSpec | None
    spec_words: str
    patch: tuple[int, int, int] | None
    batch: int | None
    precision: str | None
    peak_bytes: int | None
    recipe: Recipe = PAPER
    predicted_peak_bytes: int | None = None
    params: int | None = None
    predicted_reserved_bytes: int | None = None
    breakdown: Mapping[str, int] | None = None
    activations_by_part: Mapping[str, int] | None = None
    dice: Dice | None = None
    seconds_per_step: float | None = None
    device: str | None = None
    environment: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    completed: datetime | None = None

    @property
    def memory_bytes(self) -> int | None:
        """The peak to plot: the measured peak, else the predicted one."""
        return self.peak_bytes if self.peak_bytes is not None else self.predicted_peak_bytes

    @property
    def label(self) -> str:
        """``#3`` for a trial, ``row 3`` for a results row."""
        return f"row {self.number}" if self.state == "ROW" else f"#{self.number}"


@dataclass(frozen=True)
class Source:
    """Where the trials came from and the settings recorded with them."""

    kind: str  # "study" or "results"
    name: str
    location: str
    trials: tuple[TrialRow, ...]
    budget_bytes: int | None = None
    memory_only: bool = False
    objectives: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    data: str | None = None
    revprof_version: str | None = None


# ---- studies ------------------------------------------------------------------------------
def study_source(study_name: str, storage: str | None = None) -> Source:
    """Every trial of ``study_name`` that carries a spec, with the study's settings.

    ``storage`` is what ``revprof sweep --storage`` accepts (``sqlite:///file.db``,
    ``postgresql://...`` or the path of a ``.journal`` file; ``None``: the sweep's journal
    file), opened by :func:`revprof.sweep.storage.load_study`: a missing store is an error,
    never created.

    Raises:
        RevprofError: no store, an empty store, an unknown study (listing the known ones), or a
            study with no revprof trials.
    """
    if storage is None:
        if not DEFAULT_JOURNAL.exists():
            raise RevprofError(f"no study store at {DEFAULT_JOURNAL} (the sweep's default); run "
                               f"`revprof sweep` first, or pass --storage URL or --results FILE")
        storage = str(DEFAULT_JOURNAL)
    study = load_study(study_name, storage)
    where = redact_url(storage)
    try:
        attrs = study.user_attrs
        stored = study.get_trials(deepcopy=False)
    except Exception as error:  # a record the store holds but cannot give back, in its words
        raise RevprofError(f"cannot read study {study_name!r} from {where}: "
                           f"{first_line(error, with_type=True)}") from None
    trials = tuple(row for row in (_trial_row(t) for t in stored) if row is not None)
    if not trials:
        raise RevprofError(f"study {study_name!r} in {where} has no finished trials with a spec yet")
    memory_only = bool(attrs.get("memory_only", False)) or all(t.dice is None for t in trials)
    try:
        fixed = _study_attr(attrs, "fixed", Mapping, {})
        parsed = _study_attr(attrs, "study", Mapping, {})
        data = fixed.get("data") or parsed.get("data")
        objectives = _study_attr(attrs, "objectives", list, [])
        version = _study_attr(attrs, "revprof_version", str, None)
        data_text = None if data is None else (data if isinstance(data, str) else
                                               json.dumps(data, sort_keys=True))
        return Source(
            kind="study", name=study_name, location=where, trials=trials,
            budget_bytes=_int_or_none(attrs.get("budget_bytes"), "budget_bytes"), memory_only=memory_only,
            objectives=tuple(str(o) for o in objectives), fixed=dict(fixed), data=data_text,
            revprof_version=version,
        )
    except (RevprofError, TypeError, ValueError, RecursionError) as error:
        raise RevprofError(f"study {study_name!r} in {where}: a study attribute is not valid: "
                           f"{_why(error)}") from None


def _why(error: BaseException) -> str:
    """What is wrong with a stored value, in one line."""
    return "JSON nested too deep" if isinstance(error, RecursionError) else first_line(error)


def _study_attr(attrs: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    """Study attribute ``key`` when it is a ``kind`` (``default`` when missing).

    Raises:
        RevprofError: it is there but of another type.
    """
    value = attrs.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise RevprofError(f"study attribute {key!r} must be a {kind.__name__}; got "
                           f"{type(value).__name__}")
    return value


def _trial_row(trial: Any) -> TrialRow | None:
    record = record_of(trial)
    if not record.has("spec") or trial.state.name in ("RUNNING", "WAITING"):
        return None
    try:
        spec = ArchSpec.from_dict(record.spec)  # type: ignore[arg-type]
    except RevprofError as error:
        raise RevprofError(f"trial {trial.number}: its spec is not valid: {error}") from None
    status = record.status or {"COMPLETE": "ok", "FAIL": "failed", "PRUNED": "interrupted"}.get(
        trial.state.name, "failed")
    completed = trial.datetime_complete or trial.datetime_start
    try:
        return trial_row(trial.number, trial.state.name, str(status), spec, record,
                         f"trial {trial.number}", _utc(completed))
    except (RevprofError, TypeError, ValueError, OverflowError, AttributeError,
            RecursionError) as error:
        raise RevprofError(f"trial {trial.number}: a stored value is not valid: "
                           f"{_why(error)}") from None


def trial_row(number: int, state: str, status: str, spec: ArchSpec, record: TrialRecord,
              where: str, completed: datetime | None = None) -> TrialRow:
    """The checked :class:`TrialRow` of a trial's (or a results row's) :class:`TrialRecord`.

    Args:
        number: the trial number (results: the row index).
        state: Optuna's trial state name (``ROW`` for a results row).
        status: the revprof status (the record's, or one its state implies).
        spec: the record's spec, already checked.
        where: ``trial 3`` or ``row 3``, for error messages.
        completed: when the trial finished (UTC).

    Raises:
        RevprofError, TypeError, ValueError: a value that is not what the schema says.
    """
    return TrialRow(
        number=number, state=state, status=status, spec=spec,
        spec_words=record.spec_words or spec.describe(),
        patch=_patch(record.patch, where),
        batch=_int_or_none(record.batch, "batch"), precision=record.precision,
        recipe=recipe_or_paper(record.recipe, f"{where}: recipe", batch=record.batch,
                               precision=record.precision),
        peak_bytes=_int_or_none(record.peak_bytes, "peak_bytes"),
        predicted_peak_bytes=_int_or_none(record.predicted_peak_bytes, "predicted_peak_bytes"),
        predicted_reserved_bytes=_int_or_none(record.predicted_reserved_bytes,
                                              "predicted_reserved_bytes"),
        params=_int_or_none(record.params, "params"),
        breakdown=_sizes(record.breakdown),
        activations_by_part=_sizes(record.activations_by_part),
        dice=_dice(record),
        seconds_per_step=_float_or_none(record.seconds_per_step, "seconds_per_step"),
        device=record.device, environment=dict(record.environment or {}),
        error=record.error, completed=completed,
    )


# ---- results files ------------------------------------------------------------------------
def load_results(path: Path) -> Source:
    """The rows of a results table (CSV, Parquet or JSON lines), one per run.

    Raises:
        RevprofError: a missing or unreadable file, an unknown format, missing required columns
            (``spec``, ``peak_bytes``), no rows, or a row with an invalid spec or patch.
    """
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        raise RevprofError(f"results file {path} is a folder; give a results table such as "
                           f"results/runs.csv")
    if path.exists() and not path.is_file():
        raise RevprofError(f"results file {path} is not a regular file")
    if not path.is_file():
        raise RevprofError(f"results file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            frame = pd.read_json(path, lines=True)
        else:
            raise RevprofError(f"results file {path}: unknown format {suffix or '(no suffix)'!r}; "
                               f"use one of {', '.join(RESULT_SUFFIXES)}")
    except RevprofError:
        raise
    except pd.errors.EmptyDataError:
        raise RevprofError(f"results file {path} is empty") from None
    except Exception as error:
        raise RevprofError(f"cannot read results file {path}: {first_line(error)}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise RevprofError(f"results file {path} lacks required column(s) {', '.join(missing)} "
                           f"(it has: {', '.join(map(str, frame.columns)) or 'none'})")
    if frame.empty:
        raise RevprofError(f"results file {path} has no rows")
    rows = tuple(_result_row(i, record) for i, record in enumerate(frame.to_dict("records")))
    return Source(kind="results", name=path.stem, location=str(path), trials=rows,
                  memory_only=all(r.dice is None for r in rows))


def _result_row(index: int, columns: Mapping[str, Any]) -> TrialRow:
    try:
        return _checked_result_row(index, columns)
    except (TypeError, ValueError, OverflowError, AttributeError, RecursionError) as error:
        raise RevprofError(f"row {index}: a value is not valid: {_why(error)}") from None
    except RevprofError as error:
        message = str(error)
        raise RevprofError(message if message.startswith(f"row {index}") else
                           f"row {index}: {message}") from None


def _checked_result_row(index: int, columns: Mapping[str, Any]) -> TrialRow:
    where = f"row {index}"
    try:
        record = TrialRecord.from_result_columns(columns)
    except json.JSONDecodeError as error:
        raise RevprofError(f"{where}: spec is not a valid ArchSpec JSON: {first_line(error)}") from None
    if record.spec is None:
        raise RevprofError(f"{where}: the spec column is empty")
    try:
        spec = ArchSpec.from_dict(record.spec)
    except RevprofError as error:
        raise RevprofError(f"{where}: spec is not a valid ArchSpec JSON: {first_line(error)}") from None
    row = trial_row(index, "ROW", str(record.status or "ok"), spec, record, where,
                    _timestamp(missing_as_none(columns.get("timestamp"))))
    if row.peak_bytes is None:
        raise RevprofError(f"{where}: peak_bytes is empty")
    return row


# ---- value helpers ------------------------------------------------------------------------
def _int_or_none(value: Any, name: str = "value") -> int | None:
    """A whole non-negative number (``None`` when missing); garbage, ``1e400`` or a negative
    count is an error naming the field."""
    clean = missing_as_none(value)
    if isinstance(clean, int) and not isinstance(clean, bool) and clean >= 0:
        return clean  # exact, also past 2**53
    if isinstance(clean, str) and clean.strip().isdigit():
        return int(clean.strip())
    number = _float_or_none(value, name)
    if number is None:
        return None
    if number < 0 or number != int(number):
        raise RevprofError(f"{name} must be a whole number of at least 0; got {value!r}")
    return int(number)


def _float_or_none(value: Any, name: str = "value") -> float | None:
    """A finite number (``None`` when missing); garbage, NaN text or infinity is an error."""
    value = missing_as_none(value)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise RevprofError(f"{name} must be a number; got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise RevprofError(f"{name} must be a finite number; got {value!r}")
    return number


def _sizes(value: Any) -> dict[str, int] | None:
    if not isinstance(value, Mapping):
        return None
    return {str(k): int(v) for k, v in value.items()}


def _dice(record: TrialRecord) -> Dice | None:
    """The record's Dice, each a finite number (NaN where a region is missing); the mean, when
    not recorded, is that of the three regions (NaN unless all three are there)."""
    regions = record.dice_regions
    if regions is None:
        return None
    wt, tc, et, mean = (_float_or_none(value, f"dice_{key}") for key, value in zip(DICE_KEYS, regions))
    if mean is None and wt is not None and tc is not None and et is not None:
        mean = (wt + tc + et) / 3
    return Dice(*(math.nan if v is None else v for v in (wt, tc, et, mean)))


def _patch(value: Any, where: str) -> tuple[int, int, int] | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else [int(v) for v in text.split(",")]
        except ValueError:
            raise RevprofError(f"{where}: patch must be D,H,W or a JSON list; got {text!r}") from None
    if isinstance(value, (int, float)):
        value = [int(value)] * 3
    try:
        sizes = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise RevprofError(f"{where}: patch must be D,H,W or a JSON list; got {value!r}") from None
    if len(sizes) != 3:
        raise RevprofError(f"{where}: patch must have 3 sizes D,H,W; got {value!r}")
    return sizes[0], sizes[1], sizes[2]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # Optuna stores naive local times
        moment = moment.astimezone()
    return moment.astimezone(timezone.utc)


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    if isinstance(value, datetime):
        return _utc(value)
    try:
        return _utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


