"""Real GPU training runs to judge memory estimates by: the rows of a ground-truth TSV, and how
far each estimator's figure is from the measured one.

The file (``../shared/gpu-truth/xmem-dev.tsv``, described in the README beside it) has one
NVML-measured training run per row: a torchvision CNN, an optimizer, a batch of ``(B, C, H, W)``
images, the card, the measured bytes (``ground_bytes``), whether the run ran out of memory
(``real_oom``), and three peer estimators' figures for the same run (xMem, DNNMem, SchedTune).

:func:`read_truth_rows` reads it into typed :class:`TruthRow` values; a bad row becomes one
:class:`~revprof.errors.RevprofError` naming its line and column, and the good rows still load.
The model constructor is parsed with :mod:`ast`, never evaluated: only
``torchvision.models.<builder>(name=literal, ...)`` calls are accepted.
:func:`estimator_summary` scores any estimator the way the peers are scored
(:func:`peer_summaries`): median ``|estimate - ground| / ground`` and the share of
under-predictions on the rows that did not run out of memory, and out-of-memory accuracy on all.
"""

from __future__ import annotations

import ast
import csv
import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args

import torch

from revprof.errors import RevprofError

Estimator = Literal["xmem", "dnnmem", "schedtune"]
"""The peer estimators whose figures the file holds (column prefixes)."""

ESTIMATORS: tuple[Estimator, ...] = get_args(Estimator)
ESTIMATOR_LABELS: dict[Estimator, str] = {"xmem": "xMem", "dnnmem": "DNNMem", "schedtune": "SchedTune"}
"""How each estimator is written in prose and tables."""

ZERO_GRAD_MODES: dict[int, str] = {
    0: "zero_grad at the start of the step",
    1: "zero_grad after the loss, before backward",
    2: "zero_grad after the optimizer step",
}
"""Where the measured step called ``zero_grad()`` (``set_to_none``); ``None`` in a row: not recorded."""

_PEER_PARTS = ("est_bytes", "pred_oom", "v2_oom", "v2_cap_bytes")
REQUIRED_COLUMNS: tuple[str, ...] = (
    "source_path", "model", "model_constructor", "optimizer", "lr", "batch", "input_shape",
    "gpu_name", "total_gpu_memory", "ground_bytes", "real_oom", "zero_grad_mode", "iterations",
    "set", "pipeline", *(f"{name}_{part}" for name in ESTIMATORS for part in _PEER_PARTS),
)
"""The columns :func:`read_truth_rows` needs (others, such as ``notes``, are ignored)."""

_MODEL_MODULE = ("torchvision", "models")
_OPTIMIZER_PREFIX = "torch.optim."
_SHAPE = r"\[(\d+(?:,\d+)*)\]"
_INPUT_SHAPE = re.compile(rf"^{_SHAPE} (\w+) \(labels (\w+) {_SHAPE}\)$")
_BOOLS = {"true": True, "false": False}


@dataclass(frozen=True)
class ModelCall:
    """A ``torchvision.models`` builder call with literal keyword arguments.

    Attributes:
        builder: the builder's name in ``torchvision.models`` (``"convnext_tiny"``).
        kwargs: its keyword arguments as ``(name, value)`` pairs, in the written order; values are
            Python literals (``weights`` is always ``None``).
    """

    builder: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def kwargs_dict(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def text(self) -> str:
        """The call as written: ``torchvision.models.convnext_tiny(weights=None)``."""
        args = ", ".join(f"{name}={value!r}" for name, value in self.kwargs)
        return f"{'.'.join(_MODEL_MODULE)}.{self.builder}({args})"


@dataclass(frozen=True)
class PeerEstimate:
    """One estimator's figure for one run.

    Attributes:
        est_bytes: its estimate of the run's device memory (bytes; fractional where the tool wrote one).
        pred_oom: whether it predicted an out-of-memory failure.
        v2_oom: whether a second run, capped at the estimate, ran out of memory (an estimate too low
            to run with); ``None`` when there was no such run (``pred_oom`` rows).
        v2_cap_bytes: the cap of that run, or ``None``.
    """

    est_bytes: float
    pred_oom: bool
    v2_oom: bool | None
    v2_cap_bytes: float | None


@dataclass(frozen=True)
class TruthRow:
    """One measured training run (see ``../shared/gpu-truth/README.md`` for the measured step).

    Attributes:
        line: its line in the file (the header is line 1).
        source_path: the peer repository's result file it was transcribed from.
        model: the model family as the file names it (``"ConvNeXtTiny"``).
        model_call: the network, a ``torchvision.models`` builder call.
        optimizer: the ``torch.optim`` class name (``"AdamW"``).
        lr: its learning rate.
        batch: images per step ``B``.
        input_shape: one image's shape ``(C, H, W)``; a step's input is ``(B, C, H, W)``.
        input_dtype: the images' torch dtype name (``"float32"``).
        label_shape: one label's shape (``()``: one class index per image; a step's labels are
            ``(B, *label_shape)``).
        label_dtype: the labels' torch dtype name (``"int64"``).
        gpu_name: the card (``"NVIDIA GeForce RTX 3060"``).
        total_gpu_memory: the card's memory in bytes, as NVML reports it.
        ground_bytes: NVML's device-wide peak minus its first sample (after the CUDA context);
            for ``real_oom`` rows, only where the run died.
        real_oom: whether the run ran out of memory.
        zero_grad_mode: where ``zero_grad()`` ran (:data:`ZERO_GRAD_MODES`), ``None`` when not recorded.
        iterations: training steps run.
        set_name: the peer's experiment set (``"MC001"``).
        pipeline: its measuring pipeline (``"G1"`` older, ``"G2"`` newer).
        xmem, dnnmem, schedtune: the peer estimators' figures.
    """

    line: int
    source_path: str
    model: str
    model_call: ModelCall
    optimizer: str
    lr: float
    batch: int
    input_shape: tuple[int, int, int]
    input_dtype: str
    label_shape: tuple[int, ...]
    label_dtype: str
    gpu_name: str
    total_gpu_memory: int
    ground_bytes: int
    real_oom: bool
    zero_grad_mode: int | None
    iterations: int
    set_name: str
    pipeline: str
    xmem: PeerEstimate
    dnnmem: PeerEstimate
    schedtune: PeerEstimate

    def peer(self, name: Estimator) -> PeerEstimate:
        """The figure of estimator ``name``."""
        return getattr(self, name)


@dataclass(frozen=True)
class TruthFile:
    """The rows of one ground-truth file that loaded, and one error per row that did not.

    Attributes:
        path: the file.
        rows: the good rows, in file order.
        errors: one error per bad row, in file order, each naming the file, line and column.
    """

    path: Path
    rows: tuple[TruthRow, ...]
    errors: tuple[RevprofError, ...]


@dataclass(frozen=True)
class EstimatorSummary:
    """How close one estimator came to the measured runs.

    Attributes:
        name: the estimator (``"xMem"``).
        scored_rows: the rows its byte error is taken on (those that did not run out of memory).
        median_abs_relative_error: median of ``|estimate - ground| / ground`` on those rows.
        under_share: the share of those rows where ``estimate < ground``.
        oom_rows: all rows, on which the out-of-memory prediction is judged.
        oom_accuracy: the share of them where its out-of-memory prediction equals ``real_oom``.
    """

    name: str
    scored_rows: int
    median_abs_relative_error: float
    under_share: float
    oom_rows: int
    oom_accuracy: float


def relative_error(estimate: float, ground: float) -> float:
    """``(estimate - ground) / ground``: negative for an under-prediction."""
    return (estimate - ground) / ground


def estimator_summary(name: str, rows: Sequence[TruthRow], estimate: Callable[[TruthRow], float],
                      predicts_oom: Callable[[TruthRow], bool]) -> EstimatorSummary:
    """Score an estimator: its byte error on the rows without ``real_oom``, its out-of-memory
    prediction on all rows.

    Raises:
        RevprofError: no rows, or no row without ``real_oom``.
    """
    scored = [r for r in rows if not r.real_oom]
    if not scored:
        raise RevprofError(f"cannot score {name}: none of the {len(rows)} rows ran without running "
                           f"out of memory")
    errors = [relative_error(estimate(r), r.ground_bytes) for r in scored]
    return EstimatorSummary(
        name=name, scored_rows=len(scored),
        median_abs_relative_error=statistics.median(abs(e) for e in errors),
        under_share=sum(e < 0 for e in errors) / len(errors),
        oom_rows=len(rows),
        oom_accuracy=sum(predicts_oom(r) == r.real_oom for r in rows) / len(rows))


def peer_summaries(rows: Sequence[TruthRow]) -> tuple[EstimatorSummary, ...]:
    """:func:`estimator_summary` of each peer estimator in :data:`ESTIMATORS`."""
    return tuple(estimator_summary(ESTIMATOR_LABELS[name], rows,
                                   lambda r, n=name: r.peer(n).est_bytes,
                                   lambda r, n=name: r.peer(n).pred_oom)
                 for name in ESTIMATORS)


def read_truth_rows(path: str | Path) -> TruthFile:
    """Read a ground-truth TSV (tab-separated, a header line, one run per line).

    Returns:
        the good rows and one error per bad row (the first bad column of that row).

    Raises:
        RevprofError: the file cannot be read, is empty, or its header lacks a required column
            (:data:`REQUIRED_COLUMNS`): then no row can load.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RevprofError(f"cannot read the ground-truth file {str(path)!r}: {error}") from None
    lines = text.splitlines()
    if not lines:
        raise RevprofError(f"{path.name} is empty; expected a tab-separated header line")
    header = next(csv.reader(lines[:1], delimiter="\t", quoting=csv.QUOTE_NONE))
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise RevprofError(f"{path.name} line 1: the header lacks the column(s) {', '.join(map(repr, missing))}",
                           field=missing[0], problem="missing column")
    rows: list[TruthRow] = []
    errors: list[RevprofError] = []
    for number, fields in enumerate(csv.reader(lines[1:], delimiter="\t", quoting=csv.QUOTE_NONE), start=2):
        if not any(f.strip() for f in fields):
            continue
        try:
            if len(fields) != len(header):
                raise RevprofError(f"{path.name} line {number}: has {len(fields)} fields; the header has "
                                   f"{len(header)}")
            rows.append(parse_truth_row(dict(zip(header, fields)), number, path.name))
        except RevprofError as error:
            errors.append(error)
    return TruthFile(path=path, rows=tuple(rows), errors=tuple(errors))


def parse_truth_row(fields: Mapping[str, str], line: int, source: str) -> TruthRow:
    """One row from its ``column -> text`` fields (``source``: the file's name, for messages).

    Raises:
        RevprofError: the first bad column in :data:`REQUIRED_COLUMNS` order, as
            ``"SOURCE line N: column 'C' must be ...; got '...'"``.
    """
    values: dict[str, Any] = {}
    for column in REQUIRED_COLUMNS:
        text = fields.get(column, "")
        try:
            values[column] = _PARSERS[column](text)
        except ValueError as error:
            _fail(source, line, column, str(error), text)
    batch = values["batch"]
    image, input_dtype, label, label_dtype = values["input_shape"]
    if len(image) != 4 or image[0] != batch or label[:1] != (batch,):
        _fail(source, line, "input_shape", f"must be images [B,C,H,W] and labels [B,...] with B the "
              f"batch {batch}", fields["input_shape"])
    peers = {name: PeerEstimate(**{part: values[f"{name}_{part}"] for part in _PEER_PARTS})
             for name in ESTIMATORS}
    return TruthRow(
        line=line, source_path=values["source_path"], model=values["model"],
        model_call=values["model_constructor"], optimizer=values["optimizer"], lr=values["lr"],
        batch=batch, input_shape=(image[1], image[2], image[3]), input_dtype=input_dtype,
        label_shape=label[1:], label_dtype=label_dtype, gpu_name=values["gpu_name"],
        total_gpu_memory=values["total_gpu_memory"], ground_bytes=values["ground_bytes"],
        real_oom=values["real_oom"], zero_grad_mode=values["zero_grad_mode"],
        iterations=values["iterations"], set_name=values["set"], pipeline=values["pipeline"],
        **peers)


def parse_model_call(text: str) -> ModelCall:
    """``torchvision.models.NAME(key=literal, ...)`` as a :class:`ModelCall`, parsed, never run.

    Raises:
        ValueError: anything else (positional arguments, a non-literal value, another callee,
            pretrained ``weights``), with what was expected.
    """
    expected = "must be a call torchvision.models.NAME(key=literal, ...)"
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"{expected} (it does not parse)") from None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
        raise ValueError(expected)
    callee: list[str] = []
    node: ast.expr = call.func
    while isinstance(node, ast.Attribute):
        callee.insert(0, node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or (node.id, *callee[:-1]) != _MODEL_MODULE:
        raise ValueError(expected)
    if call.args:
        raise ValueError(f"{expected}: keyword arguments only")
    kwargs = []
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ValueError(f"{expected}: no **kwargs")
        try:
            value = ast.literal_eval(keyword.value)
        except ValueError:
            raise ValueError(f"{expected}: {keyword.arg}= must be a literal") from None
        kwargs.append((keyword.arg, value))
    if dict(kwargs).get("weights") is not None:
        raise ValueError(f"{expected} with weights=None (pretrained weights are not loaded)")
    return ModelCall(builder=callee[-1], kwargs=tuple(kwargs))


def _fail(source: str, line: int, column: str, problem: str, text: str) -> NoReturn:
    problem = f"{problem}; got {text!r}"
    raise RevprofError(f"{source} line {line}: column {column!r} {problem}", field=column, problem=problem)


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()) or int(text) < 1:
        raise ValueError("must be a positive whole number")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError("must be a positive number")
    return value


def _byte_count(text: str) -> int:
    try:
        return _positive_int(text)
    except ValueError:
        raise ValueError("must be a positive whole number of bytes") from None


def _bytes_figure(text: str) -> float:
    try:
        return _positive_float(text)
    except ValueError:
        raise ValueError("must be a positive number of bytes") from None


def _bool(text: str) -> bool:
    if text.strip() not in _BOOLS:
        raise ValueError("must be true or false")
    return _BOOLS[text.strip()]


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_none(text: str) -> Any:
        if text.strip() in ("", "null"):
            return None
        try:
            return parse(text)
        except ValueError as error:
            raise ValueError(f"{error}, or empty") from None

    return parse_or_none


def _zero_grad_mode(text: str) -> int | None:
    if text.strip() == "null":
        return None
    if text.strip() not in {str(m) for m in ZERO_GRAD_MODES}:
        raise ValueError(f"must be one of {', '.join(map(str, ZERO_GRAD_MODES))} or null")
    return int(text)


def _optimizer(text: str) -> str:
    name = text.strip().removeprefix(_OPTIMIZER_PREFIX)
    optimizer = getattr(torch.optim, name, None)
    if not (text.strip().startswith(_OPTIMIZER_PREFIX) and isinstance(optimizer, type)
            and issubclass(optimizer, torch.optim.Optimizer)):
        raise ValueError("must be a torch.optim optimizer class (torch.optim.AdamW)")
    return name


def _dtype(name: str) -> str:
    if not isinstance(getattr(torch, name, None), torch.dtype):
        raise ValueError(f"must name torch dtypes ({name!r} is not one)")
    return name


def _input_shape(text: str) -> tuple[tuple[int, ...], str, tuple[int, ...], str]:
    match = _INPUT_SHAPE.match(text.strip())
    if not match:
        raise ValueError("must be like '[B,C,H,W] float32 (labels int64 [B])'")
    image, image_dtype, label_dtype, label = match.groups()

    def dims(shape: str) -> tuple[int, ...]:
        return tuple(int(d) for d in shape.split(","))

    return dims(image), _dtype(image_dtype), dims(label), _dtype(label_dtype)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "source_path": _text, "model": _text, "model_constructor": parse_model_call,
    "optimizer": _optimizer, "lr": _positive_float, "batch": _positive_int,
    "input_shape": _input_shape, "gpu_name": _text, "total_gpu_memory": _byte_count,
    "ground_bytes": _byte_count, "real_oom": _bool, "zero_grad_mode": _zero_grad_mode,
    "iterations": _positive_int, "set": _text, "pipeline": _text,
    **{f"{name}_{part}": parse for name in ESTIMATORS for part, parse in (
        ("est_bytes", _bytes_figure), ("pred_oom", _bool), ("v2_oom", _optional(_bool)),
        ("v2_cap_bytes", _optional(_bytes_figure)))},
}
"""How each of :data:`REQUIRED_COLUMNS` is parsed: text -> value, or ``ValueError(problem)``."""
