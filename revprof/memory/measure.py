"""Peak training memory of one network: measured on CUDA, counted on the CPU, or simulated.

Backends:

- ``cuda``: a real run on a GPU; the headline is ``torch.cuda.max_memory_allocated``.
- ``cpu``: a real run on the CPU, with every live storage counted by :class:`StorageTracker`
  under CUDA's 512-byte rounding, so the figure is what a GPU would count for tensors.
- ``simulate``: the same tracker over fake tensors: nothing is allocated or computed, so full-size
  networks are predicted in seconds. It gives exactly the ``cpu`` figure.
- ``auto``: ``cuda`` when a GPU is visible, else ``simulate``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

import torch

from revprof.environment import environment, require_cuda
from revprof.errors import RevprofError, first_line, look_up
from revprof.interrupts import held_interrupts
from revprof.memory._cuda_private import clear_cublas_workspaces
from revprof.memory.alloc_conf import alloc_conf_from_environ
from revprof.memory.allocator import AllocatorPrediction, parse_alloc_conf, replay
from revprof.memory.cards import DeviceCapacity
from revprof.memory.cuda_autocast import cuda_autocast_policy
from revprof.memory.tracker import CATEGORIES, StorageTracker
from revprof.network import Network
from revprof.nn import build_network, network_from_dict, network_parts
from revprof.nn._ownership import OWNERSHIP, reuse_status
from revprof.nn.factory import model_spec
from revprof.recipe import PAPER, Recipe, recipe_or_paper
from revprof.spec import ArchSpec, Precision, parse_patch, parse_spatial
from revprof.step import (
    TrainingStep,
    counters_on_device,
    is_step_counter,
    synthetic_batch,
    watch_optimizer_state,
)

Backend = Literal["auto", "cuda", "cpu", "simulate"]
"""Where a measurement runs (see the module docstring); ``auto`` resolves to ``cuda`` or
``simulate``."""
BACKENDS: tuple[Backend, ...] = get_args(Backend)


@dataclass
class Timeline:
    """Live bytes after every op of the measured steps, with the phases marked.

    Attributes:
        bytes: live bytes after each op.
        phases: ``(start_index, phase, step)`` where each phase begins.
    """

    bytes: list[int]
    phases: list[tuple[int, str, int]]

    def spans(self) -> list[tuple[int, int, str, int]]:
        """``(start, end, phase, step)`` for each phase (``end`` exclusive)."""
        ends = [p[0] for p in self.phases[1:]] + [len(self.bytes)]
        return [(start, end, name, step) for (start, name, step), end in zip(self.phases, ends)]


@dataclass
class MemoryReport:
    """One measurement of peak training memory.

    Attributes:
        spec: the network (:class:`~revprof.network.Network`).
        patch: the input's spatial size.
        recipe: the training step measured (its batch and precision are :attr:`batch` and
            :attr:`precision`).
        peak_bytes: the headline: peak bytes allocated over the measured steps (on CUDA the
            allocator's ``max_memory_allocated``, else the tracked peak).
        breakdown: bytes by category at the tracked peak (parameters, gradients,
            optimizer_state, activations, other); sums to ``tracked_peak_bytes``.
        activations_by_part: at the tracked peak, saved-activation bytes per network part.
        saved_after_forward: when the last forward ends, saved-activation bytes per part.
        peak_phase, peak_step: where the tracked peak happened.
        reserved_bytes: CUDA ``max_memory_reserved`` (``None`` off CUDA).
        predicted_reserved_bytes: ``max_memory_reserved`` predicted by replaying the step's
            allocations through the caching-allocator model (:mod:`revprof.memory.allocator`).
        allocator: the model's whole prediction (largest segment, fragmentation at the peak,
            the ``PYTORCH_CUDA_ALLOC_CONF`` modelled; see ``AllocatorPrediction``).
        context_bytes: on CUDA, the CUDA context measured with ``mem_get_info`` (device memory
            in use minus what the allocator reserved); ``None`` elsewhere.
        allocation_log: the tracker's allocation events with op names (for ``--snapshot``);
            not serialised.
        tracked_peak_bytes: the tracker's peak (every tensor storage, CUDA rounding); equals
            ``peak_bytes`` off CUDA.
        untracked_bytes: on CUDA ``peak_bytes - tracked_peak_bytes``: "untracked (workspaces,
            kernel temporaries)", the allocator's peak beyond the tensors the tracker saw (the
            two peaks may be different moments); ``None`` off CUDA.
        gradient_reuse: whether the reversible backward overwrote the incoming gradients in
            place (``True``: every time; ``False``: it had to copy at least once, e.g. because
            the private torch counters it relies on are unavailable, which costs peak memory);
            ``None`` when no reversible sequence ran backward.
        status: ``ok``, or ``oom`` when the device ran out of memory (then ``oom`` says what
            was requested and what the device has, and on CUDA the peak figures are up to that
            moment) or, with ``device_memory``, when the allocator replay predicts it would (then
            the figures are the whole step's, as on a card without a limit, and ``oom`` says
            where the card would stop).
        oom: ``{"message", "requested_bytes", "capacity_bytes", "allocated_bytes"}`` for ``oom``;
            a predicted one also has ``predicted: True``, ``usable_bytes`` and ``reserved_bytes``.
        device_memory: the card the prediction replayed (``DeviceCapacity`` as a dict), or
            ``None``.
    """

    spec: Network
    patch: tuple[int, ...]
    recipe: Recipe
    backend: Backend
    device: str
    params: int
    peak_bytes: int
    breakdown: dict[str, int]
    activations_by_part: dict[str, int]
    saved_after_forward: dict[str, int]
    peak_phase: str
    peak_step: int
    timeline: Timeline
    steps: int
    seconds: float
    reserved_bytes: int | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    predicted_reserved_bytes: int | None = None
    allocator: dict[str, Any] | None = None
    context_bytes: int | None = None
    allocation_log: list[tuple[str, int, int, str, int]] | None = field(default=None, repr=False,
                                                                        compare=False)
    tracked_peak_bytes: int | None = None
    untracked_bytes: int | None = None
    gradient_reuse: bool | None = None
    status: str = "ok"
    oom: dict[str, Any] | None = None
    device_memory: dict[str, Any] | None = None

    @property
    def batch(self) -> int:
        return self.recipe.batch

    @property
    def precision(self) -> Precision:
        return self.recipe.precision

    def to_dict(self, timeline: bool = True) -> dict[str, Any]:
        """A JSON-able dict: ``spec`` and ``recipe`` as dicts, ``batch`` and ``precision`` beside
        them, the timeline optional (it can be long); the allocation log is not serialised."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "allocation_log" or (f.name == "timeline" and not timeline):
                continue
            if f.name in ("spec", "recipe"):
                data[f.name] = value.to_dict()
            elif f.name == "timeline":
                data[f.name] = {"bytes": list(value.bytes), "phases": [list(p) for p in value.phases]}
            else:
                data[f.name] = copy.deepcopy(value)
        data["patch"] = list(self.patch)
        data["batch"], data["precision"] = self.batch, self.precision
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryReport:
        """Inverse of :meth:`to_dict` (a missing timeline becomes empty; a report written before
        recipes existed was the paper's step at its ``batch`` and ``precision``)."""
        values = dict(data)
        values["spec"] = network_from_dict(values["spec"])
        values["patch"] = tuple(values["patch"])
        batch, precision = values.pop("batch", 1), values.pop("precision", "fp32")
        recipe = values.get("recipe")
        values["recipe"] = (recipe_or_paper(recipe) if recipe is not None else
                            PAPER.with_overrides({"batch": batch, "precision": precision}))
        raw = values.get("timeline") or {"bytes": [], "phases": []}
        values["timeline"] = Timeline(list(raw["bytes"]), [tuple(p) for p in raw["phases"]])
        return cls(**values)


def resolve_backend(backend: Backend | str) -> Backend:
    """``auto`` → ``cuda`` when a GPU is visible, else ``simulate``; checks ``cuda`` is usable."""
    backend = look_up("backend", backend, BACKENDS)
    if backend == "auto":
        return "cuda" if torch.cuda.is_available() else "simulate"
    if backend == "cuda":
        require_cuda("backend 'cuda'", "--backend simulate or cpu")
    return backend


def measure_memory(
    spec: Network | None = None,
    patch: Sequence[int] | int | str | None = None,
    recipe: Recipe = PAPER,
    backend: Backend = "auto",
    steps: int = 2,
    seed: int = 0,
    alloc_conf: str | None = None,
    *,
    model: str | Callable[[], torch.nn.Module] | torch.nn.Module | None = None,
    in_channels: int | None = None,
    out_channels: int | None = None,
    build: Callable[[], torch.nn.Module] | None = None,
    device_memory: DeviceCapacity | None = None,
) -> MemoryReport:
    """Peak memory of ``steps`` training steps of ``spec`` trained by ``recipe``, on a batch of
    ``(recipe.batch, in_channels, *patch)``.

    Args:
        spec: the network (:class:`~revprof.network.Network`): an :class:`ArchSpec` or a
            :class:`~revprof.nn.factory.ModelSpec`.
        patch: ``(D, H, W)`` or one size for all axes; each a multiple of the network's
            ``patch_multiple``. A foreign network (``model=`` or a ``ModelSpec``) may take 1 to 3
            axes, e.g. ``(86, 86)`` for 2-D images (``spec.parse_spatial``).
        recipe: the training step (:class:`~revprof.recipe.Recipe`: optimizer, loss, targets,
            precision, scaler, batch, ...); default the paper's.
        backend: ``auto``, ``cuda``, ``cpu`` or ``simulate``.
        steps: optimizer steps, at least 2 (the optimizer's state exists from the first); with a
            ``GradScaler`` on real tensors, steps it skips are run again, so ``steps`` real
            optimizer steps are measured.
        alloc_conf: the ``PYTORCH_CUDA_ALLOC_CONF`` the reserved prediction models (default:
            the environment's, as torch would read it).
        model: instead of ``spec``, any network: an ``nn.Module``, a zero-argument factory, a preset
            (``monai:segresnet``, ``nnunet:resenc-m``, ...) or ``PACKAGE.MODULE:FACTORY``. Its
            output is a tensor ``(B, C, *patch)`` or a list/tuple of them (deep supervision, full
            resolution first).
        in_channels, out_channels: of ``model`` (found from the network when not given).
        build: a zero-argument callable making another execution of ``spec``'s network (an
            :class:`ArchSpec`): the same channels, the same ``stem``/``encoders``/``decoders``/
            ``head`` parts and the same sigmoid regions, measured exactly like the network itself
            (``revprof bench`` passes RevTorch's execution this way). ``spec`` names the report.
            Unlike ``model``, it is not treated as a foreign network.
        device_memory: the card (:class:`~revprof.memory.cards.DeviceCapacity`) whose caching
            allocator the prediction replays, with ``usable_bytes`` what the allocator can draw on
            (:func:`revprof.memory.device.allocator_capacity`: the total less the CUDA context
            and the workspace allowance). Near the limit the replay frees cached blocks and
            retries as torch does; a request it cannot serve makes the result ``status="oom"``
            (predicted: ``oom["predicted"]``), naming the request and what was reserved then.

    Raises:
        RevprofError: an invalid patch, backend, step count or allocator option, a recipe the
            network cannot train with (targets it cannot output); for ``model``, a factory that
            cannot be loaded, raises or returns outputs of the wrong shape.
    """
    if build is not None and (model is not None or not isinstance(spec, ArchSpec)):
        raise RevprofError("build= makes another execution of an ArchSpec's network; give an "
                           "ArchSpec (for any other network use model=)")
    if model is not None:
        if spec is not None:
            raise RevprofError("give a spec or a model, not both")
        spec = model_spec(model, in_channels=in_channels, out_channels=out_channels)
    if spec is None or patch is None:
        raise RevprofError("measure_memory needs a network (spec or model=) and a patch")
    if not isinstance(recipe, Recipe):
        raise RevprofError(f"recipe must be a revprof.recipe.Recipe; got {type(recipe).__name__}")
    shape = parse_patch(patch) if isinstance(spec, ArchSpec) else parse_spatial(patch)  # foreign: 1-3-D
    network = spec.checked(shape, recipe.batch, recipe.targets)
    if steps < 2:
        raise RevprofError(f"steps must be at least 2 (the optimizer's state exists from the "
                           f"first); got {steps}")
    backend = resolve_backend(backend)
    config = parse_alloc_conf(alloc_conf_of(alloc_conf))  # bad options fail before the run
    if config.limits_memory and device_memory is None:
        raise RevprofError("the allocator options set per_process_memory_fraction, which limits "
                           "memory only on a card: give the device memory (--device-memory)")
    with held_interrupts():  # Ctrl-C lands after the measurement, never inside an op
        return _measure_model(network, shape, recipe, backend, steps, seed, build=build,
                              alloc_conf=alloc_conf, device_memory=device_memory)


_MAX_SKIPPED = 8
"""Steps a ``GradScaler`` may skip (non-finite gradients) before a measurement gives up on a real
optimizer step."""


def alloc_conf_of(alloc_conf: str | None) -> str:
    """``alloc_conf``, or when ``None`` the environment's as torch 2.13 reads it
    (``PYTORCH_CUDA_ALLOC_CONF``, else ``PYTORCH_ALLOC_CONF``)."""
    return alloc_conf_from_environ() if alloc_conf is None else alloc_conf


def warm_up_cuda(device: torch.device) -> None:
    """Initialise cuDNN (and the CUDA context) so one-off allocations stay out of the peak,
    then start the peak statistics afresh.

    Only a convolution forward and backward run: the networks never call cuBLAS, so no cuBLAS
    handle (whose workspace, 8–32 MiB, would stay allocated and sit in every peak) is created;
    workspaces that earlier work in the process left behind are cleared before the reset.
    Measurements and training runs (``measure --steps``) both start with this.
    """
    x = torch.randn(1, 2, 8, 8, 8, device=device, requires_grad=True)
    conv = torch.nn.Conv3d(2, 2, 3, padding=1).to(device)
    conv(x).sum().backward()
    torch.cuda.synchronize(device)
    del x, conv
    clear_cublas_workspaces()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)


@contextmanager
def cuda_measurement(device: torch.device) -> Iterator[dict[str, Any]]:
    """cuDNN as a measurement needs it: ``benchmark=False`` (benchmarking tries algorithms
    with large workspaces, and its choice varies run to run), restored afterwards. Yields the
    settings in force, to record. Nothing is changed off CUDA."""
    if device.type != "cuda":
        yield {}
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield {"cudnn_enabled": torch.backends.cudnn.enabled,
               "cudnn_benchmark": torch.backends.cudnn.benchmark,
               "cudnn_deterministic": torch.backends.cudnn.deterministic,
               "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
               "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    finally:
        torch.backends.cudnn.benchmark = previous


def oom_record(error: BaseException, device: torch.device | str) -> dict[str, Any]:
    """What an out-of-memory error says: its first line, the bytes requested (from the
    message, ``None`` when it does not say), the device's capacity and what was allocated."""
    message = first_line(error)
    requested = None
    found = re.search(r"Tried to allocate ([0-9.]+) ?(B|KiB|MiB|GiB|TiB)", str(error))
    if found:
        requested = int(float(found.group(1)) * _UNITS[found.group(2)])
    device = torch.device(device)
    capacity = allocated = None
    if device.type == "cuda" and torch.cuda.is_available():
        capacity = torch.cuda.get_device_properties(device).total_memory
        allocated = torch.cuda.memory_allocated(device)
    return {"message": message, "requested_bytes": requested, "capacity_bytes": capacity,
            "allocated_bytes": allocated}


_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def _measure_model(network: Network, patch: tuple[int, ...], recipe: Recipe, backend: Backend,
                   steps: int = 2, seed: int = 0,
                   build: Callable[[], torch.nn.Module] | None = None,
                   alloc_conf: str | None = None,
                   device_memory: DeviceCapacity | None = None) -> MemoryReport:
    """Run ``steps`` training steps under the storage tracker on fake, CPU or CUDA tensors.

    :func:`measure_memory` with the arguments already checked and the backend resolved; ``build``
    makes the network (default :func:`revprof.nn.build_network`; the benchmark passes other
    executions of the same blocks, such as RevTorch's, through ``measure_memory(..., build=)``).

    On CUDA the headline is the allocator's ``max_memory_allocated``; the tracker still gives the
    tracked peak, its breakdown and the timeline, and ``untracked_bytes`` is the difference
    (cuDNN workspaces, kernel temporaries). cuDNN benchmarking is off during the run.

    A ``torch.OutOfMemoryError`` during the steps is a result: ``status="oom"`` with the
    requested bytes and the device's capacity, the peaks up to that moment.
    """
    started = time.perf_counter()
    device = torch.device("cuda" if backend == "cuda" else "cpu")
    oom: dict[str, Any] | None = None
    OWNERSHIP.reset()
    with ExitStack() as stack:
        cudnn_settings = stack.enter_context(cuda_measurement(device))
        if backend != "cuda" and recipe.precision != "fp32":  # predict what CUDA's autocast would do
            stack.enter_context(cuda_autocast_policy())
        if backend == "simulate":
            from torch._subclasses.fake_tensor import FakeTensorMode

            stack.enter_context(FakeTensorMode())
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build() if build is not None else build_network(network, fake=backend == "simulate")
        params = sum(p.numel() for p in model.parameters())
        tracker = StorageTracker(device_type="cuda" if backend == "cuda" else None)
        handles: list[Any] = []
        saved_after_forward: dict[str, int] = {}
        steps_run = 0

        def on_phase(phase: str, step: int) -> None:
            if phase == "backward" and step == steps - 1:
                saved_after_forward.update(tracker.snapshot().activations_by_scope)
            tracker.mark_phase(phase, step)

        try:
            if backend == "cuda":
                model = model.to(device)
            runner = TrainingStep(model, recipe, network.output_kind, device.type,
                                  simulated=backend == "simulate")
            counted_counters = counters_on_device(recipe)

            def on_state(name: str, tensor: torch.Tensor) -> None:
                tracker.register([tensor])  # state made before tracking (Adagrad's) counts too
                if is_step_counter(name, tensor) and not counted_counters:
                    tracker.uncount([tensor])
                else:
                    tracker.mark("optimizer_state", [tensor])

            batch = synthetic_batch(network, recipe, patch, generator)
            if backend == "cuda":
                if recipe.transfer == "resident":
                    batch = batch.to(device)
                warm_up_cuda(device)
            handles = tracker.attribute(network_parts(network, model))
            for p in model.parameters():
                handles.append(p.register_post_accumulate_grad_hook(
                    lambda p: tracker.mark("gradients", [p.grad])))
            with tracker, tracker.saving():
                resident = batch.tensors() if recipe.transfer == "resident" else []
                tracker.register([*model_state(model), *resident])
                tracker.mark("parameters", model.parameters())
                # From the moment they exist: the optimizer's moments and buffers are optimizer
                # state; its step counters (host scalars on a GPU unless fused) are not counted.
                watch_optimizer_state(runner.optimizer, on_state)
                for step in range(steps + _MAX_SKIPPED):
                    runner(batch, step, on_phase, device=device)
                    steps_run = step + 1
                    if runner.optimizer_steps >= steps:
                        break
                runner.release()
        except torch.OutOfMemoryError as error:
            oom = oom_record(error, device)
        finally:
            for handle in handles:
                handle.remove()
        if backend == "cuda":
            torch.cuda.synchronize(device)
        env = {**environment(str(device)), **cudnn_settings}
    peak = tracker.peak if tracker.peak is not None else tracker.snapshot()  # (oom before the steps)
    breakdown = {c: peak.categories[c] for c in CATEGORIES}
    peak_bytes, reserved, untracked = peak.bytes, None, None
    device_words = {"cpu": "cpu", "simulate": "cpu (fake tensors)"}.get(backend)
    prediction = replay(tracker.events(), parse_alloc_conf(alloc_conf_of(alloc_conf)),
                        capacity=device_memory)
    if prediction.oom and oom is None and backend != "cuda":
        oom = predicted_oom(prediction)
    context = None
    if backend == "cuda":
        peak_bytes = torch.cuda.max_memory_allocated(device)
        reserved = torch.cuda.max_memory_reserved(device)
        free, total = torch.cuda.mem_get_info(device)
        context = max(0, total - free - torch.cuda.memory_reserved(device))
        untracked = peak_bytes - peak.bytes
        device_words = f"{device} ({torch.cuda.get_device_name(device)})"
    return MemoryReport(
        spec=network, patch=patch, recipe=recipe, backend=backend,
        device=device_words or str(device), params=params, reserved_bytes=reserved,
        peak_bytes=peak_bytes, breakdown=breakdown,
        activations_by_part=peak.activations_by_scope, saved_after_forward=saved_after_forward,
        peak_phase=peak.phase, peak_step=peak.step,
        timeline=Timeline(tracker.timeline, [(m.index, m.name, m.step) for m in tracker.phases]),
        steps=steps_run or steps, seconds=time.perf_counter() - started, environment=env,
        predicted_reserved_bytes=prediction.max_reserved_bytes, allocator=prediction.to_dict(),
        context_bytes=context, allocation_log=tracker.event_details(),
        tracked_peak_bytes=peak.bytes, untracked_bytes=untracked, gradient_reuse=gradient_reuse(),
        status="oom" if oom else "ok", oom=oom,
        device_memory=dataclasses.asdict(device_memory) if device_memory is not None else None,
    )


def predicted_oom(prediction: AllocatorPrediction) -> dict[str, Any]:
    """The ``oom`` record of a replay that ran out of the card's memory: one line naming the
    request (what torch's ``OutOfMemoryError`` would say), the request, the device and what was
    reserved and allocated then."""
    from revprof.units import format_bytes

    requested = prediction.oom_allocation_bytes or prediction.oom_rounded_bytes or 0
    usable = prediction.capacity_bytes or 0
    message = (f"predicted out of memory: a request of {format_bytes(requested)} does not fit once "
               f"{format_bytes(prediction.reserved_at_oom or 0)} are reserved "
               f"({format_bytes(prediction.allocated_at_oom or 0)} allocated) of the "
               f"{format_bytes(usable)} the caching allocator can use, after freeing its cache and "
               f"retrying as torch does")
    return {"message": message, "predicted": True, "requested_bytes": requested,
            "capacity_bytes": prediction.device_total_bytes, "usable_bytes": usable,
            "reserved_bytes": prediction.reserved_at_oom,
            "allocated_bytes": prediction.allocated_at_oom}


def model_state(module: torch.nn.Module) -> Iterator[torch.Tensor]:
    """The parameters and buffers (batch norm's running statistics) of ``module`` in the order
    ``module.to(device)`` allocates them: each child first, then a module's own parameters, then
    its own buffers (``nn.Module._apply``)."""
    for child in module.children():
        yield from model_state(child)
    yield from module.parameters(recurse=False)
    yield from module.buffers(recurse=False)


def gradient_reuse() -> bool | None:
    """Whether the reversible backwards since the last ``OWNERSHIP.reset()`` reused every
    incoming gradient in place (``None``: none ran). See :attr:`MemoryReport.gradient_reuse`."""
    if OWNERSHIP.gradients_reused + OWNERSHIP.gradients_copied == 0:
        return None
    return OWNERSHIP.gradients_copied == 0 and reuse_status().active
