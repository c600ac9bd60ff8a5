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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args

import torch

from revprof.errors import RevprofError
from revprof.memory.allocator import replay
from revprof.memory.cards import DeviceCapacity
from revprof.memory.measure import measure_memory
from revprof.memory.workspaces import blas_ops_in, cublas_workspace_bytes, with_blas_workspaces
from revprof.nn.factory import ModelSpec, model_spec
from revprof.recipe import OPTIMIZERS, Recipe
from revprof.recipe import ZeroGrad as RecipeZeroGrad

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
    return tuple(estimator_summary(ESTIMATOR_LABELS[name], rows, partial(_peer_bytes, name),
                                   partial(_peer_oom, name))
                 for name in ESTIMATORS)


def _peer_bytes(name: Estimator, row: TruthRow) -> float:
    return row.peer(name).est_bytes


def _peer_oom(name: Estimator, row: TruthRow) -> bool:
    return row.peer(name).pred_oom


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


# ---- predicting a row ----------------------------------------------------------------------------

@dataclass(frozen=True)
class TruthCard:
    """A card of the ground truth as revprof models it.

    Attributes:
        card: its name in :data:`revprof.memory.cards.CARDS` (``"rtx3060"``).
        capability: its compute capability ``(major, minor)``, which sets torch's cuBLAS
            workspace (:func:`revprof.memory.workspaces.cublas_workspace_bytes`).
    """

    card: str
    capability: tuple[int, int]


TRUTH_CARDS: dict[str, TruthCard] = {
    "NVIDIA GeForce RTX 3060": TruthCard("rtx3060", (8, 6)),
    "NVIDIA GeForce RTX 4060": TruthCard("rtx4060", (8, 9)),
}
"""The cards of the ground truth by ``gpu_name`` (Ampere GA106 sm_86, Ada AD107 sm_89)."""

STEP_ZERO_GRAD: dict[int | None, RecipeZeroGrad] = {0: "start", 1: "after_loss", 2: "end",
                                                    None: "after_loss"}
"""The recipe's ``zero_grad`` for each ``zero_grad_mode`` (``None``, not recorded: the measuring
code of that time defaulted to mode 1, ``ModelTrainer(zero_grad_mode=1)``)."""

OUTSIDE_ALLOCATOR_BYTES = 287_047_680
"""What the measured process holds outside the caching allocator when it reserves: the CUDA
context with lazy module loading, as PyTorch PR #86509 measured it (287,047,680 bytes after one
elementwise op; the anchor of ``memory/device.py``'s allowances). A published figure, not fitted on
these rows; the allocator can reserve ``total_gpu_memory`` less this."""


def row_card(row: TruthRow) -> TruthCard:
    """The card of ``row``.

    Raises:
        RevprofError: a ``gpu_name`` revprof has no figures for.
    """
    card = TRUTH_CARDS.get(row.gpu_name)
    if card is None:
        raise RevprofError(f"line {row.line}: column 'gpu_name' must be a card revprof knows "
                           f"({', '.join(TRUTH_CARDS)}); got {row.gpu_name!r}", field="gpu_name")
    return card


def row_capacity(row: TruthRow, outside_bytes: int = OUTSIDE_ALLOCATOR_BYTES) -> DeviceCapacity:
    """The card as the caching allocator sees it: ``total_gpu_memory``, of which all but
    ``outside_bytes`` can be reserved."""
    return DeviceCapacity(row.total_gpu_memory, usable_bytes=max(0, row.total_gpu_memory - outside_bytes),
                          name=row_card(row).card, source=f"total_gpu_memory of line {row.line}")


def row_recipe(row: TruthRow) -> Recipe:
    """The measured step as a recipe (``../shared/gpu-truth/README.md``): ``torch.optim``'s
    optimizer at the row's learning rate with every other argument at PyTorch's default (a
    ``Recipe(...)``, not the paper's preset, which sets a weight decay), cross-entropy on class
    labels, ``zero_grad`` where the row says (:data:`STEP_ZERO_GRAD`), each batch copied from the
    host, ``torch.max(outputs, 1)`` after the step, fp32.

    ``steps`` is ``iterations + 1``: the measuring loop (xMem's ``conv_train_loop``) breaks after
    the step whose index reaches ``iterations``, so it runs steps 0 to ``iterations``.

    Raises:
        RevprofError: an optimizer the recipe does not run, inputs that are not fp32 images with
            int64 class labels.
    """
    if (row.input_dtype, row.label_dtype, row.label_shape) != ("float32", "int64", ()):
        raise RevprofError(f"line {row.line}: column 'input_shape' must be float32 images with "
                           f"int64 class labels [B]; got {row.input_dtype} with {row.label_dtype} "
                           f"labels of shape {list(row.label_shape)}", field="input_shape")
    optimizer = row.optimizer.lower()
    if optimizer not in OPTIMIZERS:
        raise RevprofError(f"line {row.line}: column 'optimizer' must be one of the recipe's "
                           f"({', '.join(OPTIMIZERS)}); got torch.optim.{row.optimizer}",
                           field="optimizer")
    try:
        return Recipe(name=f"gpu-truth line {row.line}", optimizer=optimizer, lr=row.lr, loss="ce",
                      targets="labels", zero_grad=STEP_ZERO_GRAD[row.zero_grad_mode], batch=row.batch,
                      steps=row.iterations + 1, after_step="max", transfer="per_step")
    except RevprofError as error:  # a batch, rate or step count over revprof's bounds
        raise RevprofError(f"line {row.line}: {error}", field=error.field, problem=error.problem) from None


def row_network(row: TruthRow) -> ModelSpec:
    """The row's torchvision network as a :class:`~revprof.nn.factory.ModelSpec` on its input's
    channels (``(B, C, H, W)`` images)."""
    return model_spec(f"torchvision.models:{row.model_call.builder}", row.model_call.kwargs_dict(),
                      in_channels=row.input_shape[0])


@dataclass(frozen=True)
class RowPrediction:
    """revprof's prediction of one measured run, before the allowance.

    Attributes:
        line: the row's line.
        allocated_bytes: the tensor peak of the step (``max_memory_allocated`` a GPU would report).
        reserved_bytes: the caching allocator's predicted ``max_memory_reserved`` on the card, the
            cuBLAS workspace included: near the limit torch frees its cache and retries, so this
            is at most ``usable_bytes`` (for an ``oom`` prediction: up to the failure).
        unlimited_reserved_bytes: the same without a device limit.
        workspace_bytes: the cuBLAS workspace added to the allocation log (0: no cuBLAS call).
        usable_bytes: what the allocator could reserve on the card (:func:`row_capacity`).
        oom: the replay under ``usable_bytes`` ran out of memory, after torch's free-and-retry.
        oom_requested_bytes: the request that failed (``None`` without ``oom``).
        alloc_retries: times the replay freed the cache and retried on the card.
        peak_phase, peak_step: where the tensor peak was.
        seconds: wall time of this prediction (trace, replays).
    """

    line: int
    allocated_bytes: int
    reserved_bytes: int
    unlimited_reserved_bytes: int
    workspace_bytes: int
    usable_bytes: int
    oom: bool
    oom_requested_bytes: int | None
    alloc_retries: int
    peak_phase: str
    peak_step: int
    seconds: float

    @property
    def allocator_bytes(self) -> int:
        """What the allocator adds to the tensors: reserved − allocated (cache, rounding, workspace)."""
        return self.reserved_bytes - self.allocated_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "allocator_bytes": self.allocator_bytes}


def predict_row(row: TruthRow, outside_bytes: int = OUTSIDE_ALLOCATOR_BYTES) -> RowPrediction:
    """Reproduce ``row``'s step on the simulate backend (fake tensors) and predict its memory.

    The step's allocation log gets torch's cuBLAS workspace (and cuBLASLt's per-call one) as a GPU
    run has them (:func:`revprof.memory.workspaces.with_blas_workspaces`), then is replayed through
    the caching-allocator model on the card, with ``total_gpu_memory - outside_bytes`` for the
    allocator (``reserved_bytes``, ``oom``), and without a limit (``unlimited_reserved_bytes``).

    Raises:
        RevprofError: a row revprof cannot reproduce (:func:`row_card`, :func:`row_recipe`), or a
            network that does not build or run.
    """
    started = time.perf_counter()
    card, recipe = row_card(row), row_recipe(row)
    report = measure_memory(row_network(row), row.input_shape[1:], recipe, backend="simulate",
                            steps=recipe.steps)
    workspace = cublas_workspace_bytes(card.capability)
    log = report.allocation_log or []
    if not blas_ops_in(log):
        workspace = 0
    events = with_blas_workspaces(log, workspace)
    capacity = row_capacity(row, outside_bytes)
    on_card = replay(events, capacity=capacity)
    unlimited = replay(events).max_reserved_bytes
    return RowPrediction(
        line=row.line, allocated_bytes=report.peak_bytes, reserved_bytes=on_card.max_reserved_bytes,
        unlimited_reserved_bytes=unlimited, workspace_bytes=workspace, usable_bytes=capacity.usable,
        oom=on_card.oom, oom_requested_bytes=on_card.oom_requested_bytes,
        alloc_retries=on_card.alloc_retries, peak_phase=report.peak_phase,
        peak_step=report.peak_step, seconds=time.perf_counter() - started)


# ---- the allowance and the scores ----------------------------------------------------------------

ALLOWANCE_BYTES: dict[str, int] = {"rtx3060": -68 * 2**20, "rtx4060": 96 * 2**20}
"""What NVML's figure holds beyond the predicted reserved peak, one constant per card, fitted on the
120 dev rows (``xmem-dev.tsv``: 86 and 20 rows that ran) by :func:`fit_allowances` and never per
row; the derivation is in ``docs/memory-model.md`` ("Real GPUs: what NVML's figure adds"). The
RTX 3060's is negative: there the replayed cache of the large ConvNeXt rows (67 of its 86) exceeds
what NVML saw by more than NVML adds beyond the allocator."""


@dataclass(frozen=True)
class ScoredRow:
    """One row with revprof's prediction (or why there is none) and the allowance of its card.

    Attributes:
        row: the measured run.
        prediction: revprof's prediction, ``None`` when the row could not be reproduced.
        error: why not (one line), else ``None``.
        allowance_bytes: the card's allowance (:data:`ALLOWANCE_BYTES`).
    """

    row: TruthRow
    prediction: RowPrediction | None
    error: str | None = None
    allowance_bytes: int = 0

    @property
    def predicted_bytes(self) -> int | None:
        """The figure compared with ``ground_bytes``: predicted reserved + the allowance."""
        return None if self.prediction is None else self.prediction.reserved_bytes + self.allowance_bytes

    @property
    def relative_error(self) -> float | None:
        """``(predicted - ground) / ground`` (meaningless for ``real_oom`` rows, whose ground is
        where the run died)."""
        predicted = self.predicted_bytes
        return None if predicted is None else relative_error(predicted, self.row.ground_bytes)

    def to_dict(self) -> dict[str, Any]:
        """The row's figures, revprof's and each peer's, JSON-able."""
        row = self.row
        peers: dict[str, Any] = {name: {"estimate_bytes": row.peer(name).est_bytes,
                        "relative_error": relative_error(row.peer(name).est_bytes, row.ground_bytes),
                        "predicted_oom": row.peer(name).pred_oom} for name in ESTIMATORS}
        return {"line": row.line, "model": row.model_call.text(), "optimizer": row.optimizer,
                "batch": row.batch, "gpu": row.gpu_name, "zero_grad_mode": row.zero_grad_mode,
                "pipeline": row.pipeline, "measured_bytes": row.ground_bytes, "real_oom": row.real_oom,
                "revprof": None if self.prediction is None else {
                    **self.prediction.to_dict(), "allowance_bytes": self.allowance_bytes,
                    "predicted_bytes": self.predicted_bytes, "relative_error": self.relative_error},
                "error": self.error, **peers}


def score_rows(rows: Sequence[TruthRow], predictions: Mapping[int, RowPrediction | str],
               allowance: Mapping[str, int] | None = None) -> list[ScoredRow]:
    """Each row with its prediction (by line; a text is why there is none) and its card's
    allowance (default :data:`ALLOWANCE_BYTES`). Rows without an entry are left out."""
    allowance = ALLOWANCE_BYTES if allowance is None else allowance
    scored = []
    for row in rows:
        if row.line not in predictions:
            continue
        outcome = predictions[row.line]
        card = TRUTH_CARDS.get(row.gpu_name)
        extra = allowance.get(card.card, 0) if card is not None else 0
        if isinstance(outcome, RowPrediction):
            scored.append(ScoredRow(row, outcome, None, extra))
        else:
            scored.append(ScoredRow(row, None, str(outcome), extra))
    return scored


ALLOWANCE_QUANTILE = 0.6
"""The residual quantile the allowance is fitted at: the 60th percentile of ``ground - predicted
reserved``, so that a prediction errs high more often than low (an under-prediction risks an out
of memory, an over-prediction only headroom); the median (0.5) would under-predict half the rows."""


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` by linear interpolation between the sorted values (numpy's
    default, ``statistics.quantiles(method="inclusive")``).

    Raises:
        RevprofError: no values, or ``q`` outside [0, 1].
    """
    if not values or not 0 <= q <= 1:
        raise RevprofError(f"a quantile needs values and q in [0, 1]; got {len(values)} values, q={q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def fit_allowances(scored: Sequence[ScoredRow], q: float = ALLOWANCE_QUANTILE) -> dict[str, int]:
    """One allowance per card: the ``q`` quantile (:data:`ALLOWANCE_QUANTILE`) of
    ``ground - predicted reserved`` over that card's rows that ran (not ``real_oom``) and were
    predicted, rounded to whole MiB. Never per row.

    Raises:
        RevprofError: no such row.
    """
    residuals: dict[str, list[int]] = {}
    for s in scored:
        if s.prediction is None or s.row.real_oom:
            continue
        card = row_card(s.row).card
        residuals.setdefault(card, []).append(s.row.ground_bytes - s.prediction.reserved_bytes)
    if not residuals:
        raise RevprofError("cannot fit an allowance: no predicted row ran without running out of memory")
    mib = 2**20
    return {card: round(quantile(values, q) / mib) * mib for card, values in sorted(residuals.items())}


def revprof_summary(scored: Sequence[ScoredRow]) -> EstimatorSummary:
    """revprof scored as the peers are (:func:`estimator_summary`) on the predicted rows."""
    done = [s for s in scored if s.prediction is not None]
    by_line = {s.row.line: s for s in done}
    return estimator_summary("revprof", [s.row for s in done],
                             lambda r: float(by_line[r.line].predicted_bytes or 0),
                             lambda r: bool(by_line[r.line].prediction.oom))  # type: ignore[union-attr]


def summaries(scored: Sequence[ScoredRow]) -> dict[str, EstimatorSummary]:
    """revprof and each peer (keys ``revprof``, ``xmem``, ``dnnmem``, ``schedtune``), all on the
    same rows: those revprof predicted."""
    rows = [s.row for s in scored if s.prediction is not None]
    return {"revprof": revprof_summary(scored),
            **dict(zip(ESTIMATORS, peer_summaries(rows), strict=True))}


SUMMARY_KEYS: dict[str, str] = {"revprof": "revprof", **{str(k): v for k, v in ESTIMATOR_LABELS.items()}}
"""The summary's estimators: JSON key -> how tables name them."""


def summary_dict(summary: EstimatorSummary) -> dict[str, Any]:
    """One estimator's scores under the record's keys (``median_abs_rel_error``, ``under_share``,
    ``oom_accuracy``, the row counts)."""
    return {"median_abs_rel_error": summary.median_abs_relative_error,
            "under_share": summary.under_share, "oom_accuracy": summary.oom_accuracy,
            "scored_rows": summary.scored_rows, "oom_rows": summary.oom_rows}


def truth_record(scored: Sequence[ScoredRow], allowance: Mapping[str, int], *, complete: bool,
                 source: str, machine: Mapping[str, Any] | None = None,
                 fitted: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The benchmark's JSON: per row, and a summary a script can read
    (``summary.revprof.median_abs_rel_error``, ``summary.xmem.oom_accuracy``, ...).

    Args:
        scored: the rows done so far (:func:`score_rows`).
        allowance: the allowance per card used for the compared figure.
        complete: every row of the file was attempted (``False`` after Ctrl-C).
        source: the rows' file.
        machine: where it ran (load, cores), as the caller measured it.
        fitted: allowances refitted on these rows, when asked for (for the record only).
    """
    done = [s for s in scored if s.prediction is not None]
    seconds = [s.prediction.seconds for s in done]  # type: ignore[union-attr]
    record: dict[str, Any] = {
        "source": source, "complete": complete, "rows_attempted": len(scored),
        "rows_predicted": len(done), "failed": [{"line": s.row.line, "error": s.error}
                                                for s in scored if s.prediction is None],
        "allowance_bytes": dict(allowance), "outside_allocator_bytes": OUTSIDE_ALLOCATOR_BYTES,
        "seconds_per_estimate": {"median": statistics.median(seconds) if seconds else None,
                                 "max": max(seconds, default=None), "total": sum(seconds)},
        "machine": dict(machine or {}), "rows": [s.to_dict() for s in scored],
    }
    if fitted is not None:
        record["fitted_allowance_bytes"] = dict(fitted)
    if done and any(not s.row.real_oom for s in done):
        record["summary"] = {key: summary_dict(value) for key, value in summaries(scored).items()}
        record["hold_out"] = [{"pipeline": h.group, "allowance_bytes": h.allowance_bytes,
                               "revprof": summary_dict(h.revprof), "xmem": summary_dict(h.xmem)}
                              for h in hold_out(scored)]
    return record


def hold_out_markdown(held: Sequence[Mapping[str, Any]]) -> str:
    """The ``hold_out`` part of :func:`truth_record` as Markdown: each pipeline's rows scored with
    the allowance fitted on the other pipeline's."""
    mib = 2**20
    lines = ["| rows | allowance fitted on the others | revprof | under | xMem | under |",
             "|---|---|---:|---:|---:|---:|"]
    for h in held:
        fitted = ", ".join(f"{card} {value / mib:+.0f} MiB" for card, value in h["allowance_bytes"].items())
        r, x = h["revprof"], h["xmem"]
        lines.append(f"| {h['pipeline']} ({r['scored_rows']} ran) | {fitted} "
                     f"| {100 * r['median_abs_rel_error']:.2f} % | {100 * r['under_share']:.1f} % "
                     f"| {100 * x['median_abs_rel_error']:.2f} % | {100 * x['under_share']:.1f} % |")
    return "\n".join(lines)


def summary_markdown(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """The summary of :func:`truth_record` as a Markdown table, one estimator a row."""
    lines = ["| estimator | median abs. relative error | under-predictions | OOM predicted right |",
             "|---|---:|---:|---:|"]
    for key, label in SUMMARY_KEYS.items():
        s = summary[key]
        lines.append(f"| {label} | {100 * s['median_abs_rel_error']:.2f} % ({s['scored_rows']} rows) "
                     f"| {100 * s['under_share']:.1f} % | {100 * s['oom_accuracy']:.1f} % "
                     f"({s['oom_rows']} rows) |")
    return "\n".join(lines)


MISS_THRESHOLD = 0.02
"""Rows missed by more than this relative error get a line of their own in :func:`miss_table`."""


def miss_part(scored: ScoredRow) -> tuple[str, int]:
    """Which part of the compared figure (tensors + allocator + allowance) a miss lies in, and by how
    many bytes, as far as the measured figure can tell:

    - ``allocated``: over-predicted even with no allocator cache at all (the tensor peak plus the
      allowance already exceeds the measurement);
    - ``allocator``: over-predicted, the measurement lying between the tensors (plus allowance)
      and the prediction: the replayed cache is larger than the GPU's;
    - ``allowance``: under-predicted: what the GPU used beyond the replayed reserved memory exceeds
      the card's allowance (workspaces, kernels, or a cache larger than replayed).

    Returns:
        ``(part, bytes)``, bytes signed as ``predicted - ground`` for the part.
    """
    prediction, ground = scored.prediction, scored.row.ground_bytes
    if prediction is None or scored.predicted_bytes is None:
        return "none", 0
    miss = scored.predicted_bytes - ground
    if miss < 0:
        return "allowance", miss
    floor = prediction.allocated_bytes + scored.allowance_bytes
    return ("allocated", floor - ground) if floor > ground else ("allocator", miss)


def miss_table(scored: Sequence[ScoredRow], threshold: float = MISS_THRESHOLD) -> str:
    """Where revprof misses, as Markdown: per card and model family the median signed error and
    what the figure is made of (tensors, allocator cache, allowance, as shares of the measurement),
    then each row off by more than ``threshold`` with the part it misses in (:func:`miss_part`)."""
    groups: dict[tuple[str, str], list[ScoredRow]] = {}
    for s in scored:
        if s.prediction is not None and not s.row.real_oom:
            groups.setdefault((row_card(s.row).card, s.row.model), []).append(s)
    mib = 2**20
    lines = ["| card | model | rows | median error | median abs. error | tensors | allocator cache | allowance |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for (card, model), members in sorted(groups.items()):
        errors = [s.relative_error or 0.0 for s in members]

        def share(part: Callable[[ScoredRow], int], members: list[ScoredRow] = members) -> str:
            return f"{100 * statistics.median(part(s) / s.row.ground_bytes for s in members):.1f} %"

        lines.append(f"| {card} | {model} | {len(members)} | {100 * statistics.median(errors):+.2f} % "
                     f"| {100 * statistics.median(abs(e) for e in errors):.2f} % "
                     f"| {share(lambda s: s.prediction.allocated_bytes)} "  # type: ignore[union-attr]
                     f"| {share(lambda s: s.prediction.allocator_bytes)} "  # type: ignore[union-attr]
                     f"| {members[0].allowance_bytes / mib:+.0f} MiB |")
    missed = [s for members in groups.values() for s in members if abs(s.relative_error or 0.0) > threshold]
    if missed:
        lines += ["", f"| line | card | model | optimizer | batch | error | part | by |",
                  "|---:|---|---|---|---:|---:|---|---:|"]
        for s in sorted(missed, key=lambda s: s.row.line):
            part, by = miss_part(s)
            lines.append(f"| {s.row.line} | {row_card(s.row).card} | {s.row.model} | {s.row.optimizer} "
                         f"| {s.row.batch} | {100 * (s.relative_error or 0.0):+.1f} % | {part} "
                         f"| {by / mib:+.0f} MiB |")
    return "\n".join(lines)


@dataclass(frozen=True)
class HoldOut:
    """revprof on one group of rows with the allowance fitted on the other rows, beside xMem on
    the same rows.

    Attributes:
        group: the rows' value of the grouping (``"G2"``).
        allowance_bytes: the allowance fitted without them.
        revprof: revprof's scores on them; xmem: xMem's.
    """

    group: str
    allowance_bytes: dict[str, int]
    revprof: EstimatorSummary
    xmem: EstimatorSummary


def hold_out(scored: Sequence[ScoredRow], group: Callable[[TruthRow], str] = lambda r: r.pipeline,
             q: float = ALLOWANCE_QUANTILE) -> list[HoldOut]:
    """For each group of rows (default: the measuring pipeline, G1 or G2), fit the allowance on the
    other groups only and score the group: how the allowance carries to rows it was not fitted on.
    Groups whose other rows leave a card without a fit are skipped."""
    done = [s for s in scored if s.prediction is not None]
    results = []
    for value in sorted({group(s.row) for s in done}):
        inside = [s for s in done if group(s.row) == value]
        try:
            fitted = fit_allowances([s for s in done if group(s.row) != value], q)
        except RevprofError:
            continue
        cards = {row_card(s.row).card for s in inside}
        if not cards <= fitted.keys() or all(s.row.real_oom for s in inside):
            continue
        rescored = score_rows([s.row for s in inside],
                              {s.row.line: s.prediction for s in inside if s.prediction}, fitted)
        results.append(HoldOut(value, fitted, revprof_summary(rescored),
                               peer_summaries([s.row for s in inside])[0]))
    return results
