"""The memory-budget planner: what fits in N GiB, by a criterion that does not lie?

Every answer fits the budget (less a safety margin) by the chosen criterion, checked by a real
simulation (the simulate backend) plus the caching-allocator model:

- ``allocated``: the tracker's peak of live tensor bytes (``max_memory_allocated``);
- ``reserved``: the allocator model's predicted ``max_memory_reserved``;
- ``device`` (default): reserved + CUDA context + workspace allowance (:mod:`revprof.memory.device`).

Two questions:

- :func:`largest_patch`: the patch with the most voxels for a fixed network. For a fixed network
  every tensor of a step is ``a + b * voxels`` bytes (feature maps of level ``l`` hold
  ``voxels / 8**l`` voxels whatever the patch's shape, parameters and statistics are constant), so
  two simulations give the size of every allocation at any voxel count. The planner synthesises the
  allocation log of each candidate voxel count from them, replays it (tensor peak and allocator),
  proposes the largest count that fits, and verifies the proposal by a real simulation; the report
  lists every candidate simulated. Among shapes with that voxel count it prefers the one closest to
  the data's median shape (``median_shape``), else the most cube-like.
- :func:`best_networks`: for a fixed patch, the deepest and widest networks that fit, found by a
  binary search over depth for each width scale (memory grows monotonically with both).

Predictions are cached per (spec, patch) within a planner run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from revprof.errors import RevprofError, look_up
from revprof.memory.allocator import parse_alloc_conf, replay
from revprof.memory.cards import DeviceCapacity
from revprof.memory.device import DeviceClass, allocator_capacity, device_need
from revprof.memory.measure import alloc_conf_of, measure_memory
from revprof.memory.tracker import rounded
from revprof.network import Network
from revprof.recipe import PAPER, Recipe
from revprof.spec import ArchSpec, validate_patch
from revprof.units import format_bytes

DEFAULT_MAX_PATCH = (240, 240, 160)
"""The BraTS field of view (240×240×155) rounded up to a multiple of 16 along z."""

WIDTH_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
CriterionName = Literal["device", "reserved", "allocated"]
"""What must fit a budget: the device need (reserved + CUDA context + workspace), the reserved
or the allocated bytes."""
CRITERIA: tuple[CriterionName, ...] = get_args(CriterionName)


@dataclass(frozen=True)
class Criterion:
    """What "fits" means: ``need(candidate) <= limit(budget)``.

    Attributes:
        name: ``device``, ``reserved`` or ``allocated``.
        margin: fraction of the budget kept free (0.05: answers use at most 95%).
        context, workspace: device-need parts in bytes (``None``: the documented allowances).
        device_class: the context allowance's device class.
        alloc_conf: the ``PYTORCH_CUDA_ALLOC_CONF`` modelled (``None``: the environment's).
        card: the device (``--device-memory``): every candidate is also replayed through the
            allocator model on what this card leaves the allocator (its total less the context
            and workspace), and one the replay says would run out of memory never fits, whatever
            the criterion.
    """

    name: CriterionName = "device"
    margin: float = 0.0
    context: int | None = None
    workspace: int | None = None
    device_class: DeviceClass = "default"
    alloc_conf: str | None = None
    card: DeviceCapacity | None = None

    def __post_init__(self) -> None:
        look_up("criterion", self.name, CRITERIA)
        if not 0 <= self.margin < 1:
            raise RevprofError(f"margin must be at least 0% and below 100%; got {100 * self.margin:g}%")
        parse_alloc_conf(alloc_conf_of(self.alloc_conf))

    def limit(self, budget_bytes: int) -> int:
        return int(budget_bytes * (1 - self.margin))

    def need(self, candidate: Candidate) -> int:
        return {"allocated": candidate.peak_bytes, "reserved": candidate.reserved_bytes,
                "device": candidate.device_bytes}[self.name]

    def fits(self, candidate: Candidate, budget_bytes: int) -> bool:
        """Whether ``candidate`` fits: its need within the limit, and no predicted out-of-memory."""
        return self.need(candidate) <= self.limit(budget_bytes) and not candidate.oom

    def allocator_card(self) -> DeviceCapacity | None:
        """The card as its caching allocator sees it (``None`` without ``card``)."""
        if self.card is None:
            return None
        return allocator_capacity(self.card, self.context, self.workspace, self.device_class)

    def device_parts(self, reserved: int) -> tuple[int, int]:
        need = device_need(reserved, self.context, self.workspace, self.device_class)
        return need.context, need.workspace


@dataclass(frozen=True)
class Candidate:
    """One configuration with every part of its need (bytes).

    ``verified``: simulated; otherwise its figures come from a synthesised allocation log.
    ``oom``: with a card, the allocator replay ran out of its memory (then ``reserved_bytes`` is
    what was reserved when it did).
    """

    spec: Network
    patch: tuple[int, ...]
    peak_bytes: int
    params: int
    reserved_bytes: int = 0
    context_bytes: int = 0
    workspace_bytes: int = 0
    verified: bool = True
    oom: bool = False

    @property
    def voxels(self) -> int:
        return math.prod(self.patch)  # any number of axes (a foreign network's 2-D input)

    @property
    def device_bytes(self) -> int:
        return self.reserved_bytes + self.context_bytes + self.workspace_bytes

    def to_dict(self) -> dict[str, object]:
        return {"spec": self.spec.to_dict(), "spec_words": self.spec.describe(),
                "patch": list(self.patch), "voxels": self.voxels, "params": self.params,
                "peak_bytes": self.peak_bytes, "predicted_reserved_bytes": self.reserved_bytes,
                "context_bytes": self.context_bytes, "workspace_bytes": self.workspace_bytes,
                "device_need_bytes": self.device_bytes, "verified": self.verified,
                "oom": self.oom}


@dataclass
class Plan:
    """The planner's answer: candidates that fit, best first, and what it checked.

    Attributes:
        limit_bytes: the budget less the margin; every candidate's need is at most this.
        checked: every configuration simulated, in order, with its figures.
        modelled: voxel counts evaluated from synthesised allocation logs (largest patch only).
        notes: how the answer was found, in words.
    """

    budget_bytes: int
    question: str
    candidates: list[Candidate]
    evaluated: int
    rejected: list[Candidate] = field(default_factory=list)
    criterion: Criterion = field(default_factory=Criterion)
    checked: list[Candidate] = field(default_factory=list)
    modelled: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def limit_bytes(self) -> int:
        return self.criterion.limit(self.budget_bytes)

    def fits(self, candidate: Candidate) -> bool:
        return self.criterion.fits(candidate, self.budget_bytes)

    def to_dict(self) -> dict[str, object]:
        return {"budget_bytes": self.budget_bytes, "question": self.question,
                "criterion": self.criterion.name, "margin": self.criterion.margin,
                "limit_bytes": self.limit_bytes, "evaluated": self.evaluated,
                "modelled_voxel_counts": self.modelled, "notes": self.notes,
                "candidates": [c.to_dict() for c in self.candidates],
                "checked": [{**c.to_dict(), "fits": self.fits(c)} for c in self.checked]}


class _Predictor:
    """Cached simulate predictions with the allocator model and the device-need parts."""

    def __init__(self, recipe: Recipe, criterion: Criterion,
                 on_evaluate: Callable[[Candidate], None] | None) -> None:
        self.recipe = recipe
        self.criterion = criterion
        self.cache: dict[tuple[str, tuple[int, ...]], Candidate] = {}
        self.logs: dict[tuple[str, tuple[int, ...]], list[tuple[str, int, int, str, int]]] = {}
        self.on_evaluate = on_evaluate or (lambda candidate: None)

    def __call__(self, spec: Network, patch: tuple[int, ...]) -> Candidate:
        key = (spec.to_json(), patch)
        if key not in self.cache:
            report = measure_memory(spec, patch, self.recipe, backend="simulate",
                                    alloc_conf=self.criterion.alloc_conf,
                                    device_memory=self.criterion.allocator_card())
            reserved = int(report.predicted_reserved_bytes or 0)
            context, workspace = self.criterion.device_parts(reserved)
            self.cache[key] = Candidate(spec, patch, report.peak_bytes, report.params, reserved,
                                        context, workspace, oom=report.status == "oom")
            self.logs[key] = report.allocation_log or []
            self.on_evaluate(self.cache[key])
        return self.cache[key]

    def log(self, spec: Network, patch: tuple[int, ...]) -> list[tuple[str, int, int, str, int]]:
        self(spec, patch)
        return self.logs[(spec.to_json(), patch)]

    def modelled(self, spec: Network, patch: tuple[int, ...], peak: int, reserved: int,
                 params: int, oom: bool = False) -> Candidate:
        context, workspace = self.criterion.device_parts(reserved)
        return Candidate(spec, patch, peak, params, reserved, context, workspace, verified=False,
                         oom=oom)


def _round_down(size: int, step: int) -> int:
    return max(step, size // step * step)


class _LogModel:
    """Allocation logs at any voxel count from two simulated logs of the same network.

    Each event's size is ``a + b * voxels``; ``exact`` is False when the two logs differ in
    structure (then nothing is synthesised)."""

    def __init__(self, low: list[tuple[str, int, int, str, int]], v_low: int,
                 high: list[tuple[str, int, int, str, int]], v_high: int) -> None:
        self.v_low, self.v_high = v_low, v_high
        low, high = _canonical(low), _canonical(high)
        self.exact = len(low) == len(high) and v_low != v_high and all(
            a[0] == b[0] and a[1] == b[1] and a[3] == b[3] for a, b in zip(low, high))
        self.actions = [(e[0], e[1]) for e in low]
        self.low = [e[2] for e in low]
        self.slope = [h[2] - e[2] for e, h in zip(low, high)] if self.exact else []

    def events(self, voxels: int) -> list[tuple[str, int, int]]:
        dv, span = voxels - self.v_low, self.v_high - self.v_low
        return [(action, ident, n0 + -(-(s * dv) // span) if s else n0)
                for (action, ident), n0, s in zip(self.actions, self.low, self.slope)]


def _canonical(log: list[tuple[str, int, int, str, int]]) -> list[tuple[str, int, int, str, int]]:
    """``log`` with the frees of each op in allocation order: one op can free several storages in
    an order that varies from run to run (autocast's cast cache is emptied in the garbage
    collector's order), which changes no live total after the op."""
    out: list[tuple[str, int, int, str, int]] = []
    frees: list[tuple[str, int, int, str, int]] = []
    for event in log:
        if event[0] == "free" and (not frees or frees[-1][4] == event[4]):
            frees.append(event)
            continue
        out.extend(sorted(frees, key=lambda e: e[1]))
        frees = [event] if event[0] == "free" else []
        if event[0] != "free":
            out.append(event)
    out.extend(sorted(frees, key=lambda e: e[1]))
    return out


def _tensor_peak(events: list[tuple[str, int, int]]) -> int:
    """The tracker's figure for a log: the peak of live bytes, each rounded to 512."""
    live = peak = 0
    sizes: dict[int, int] = {}
    for action, ident, nbytes in events:
        if action == "alloc":
            sizes[ident] = rounded(nbytes)
            live += sizes[ident]
            peak = max(peak, live)
        else:
            live -= sizes.pop(ident, 0)
    return peak


def _shapes_by_voxels(max_patch: Sequence[int], step: int, smallest: int | None = None
                      ) -> dict[int, list[tuple[int, ...]]]:
    axes = [range(smallest or step, m + 1, step) for m in max_patch]
    shapes: dict[int, list[tuple[int, ...]]] = {}
    for d in axes[0]:
        for h in axes[1]:
            for w in axes[2]:
                shapes.setdefault(d * h * w, []).append((d, h, w))
    return shapes


def shape_preference(median_shape: Sequence[float] | None) -> Callable[[tuple[int, ...]], tuple[float, ...]]:
    """Sort key among patches of one voxel count: closest to the median shape's proportions (the
    spread of ``log(patch / median)`` over the axes, as nnU-Net keeps the median's aspect), else
    the most cube-like; ties go to the larger first axes."""
    def key(patch: tuple[int, ...]) -> tuple[float, ...]:
        if median_shape:
            logs = [math.log(p / m) for p, m in zip(patch, median_shape)]
        else:
            logs = [math.log(p) for p in patch]
        mean = sum(logs) / 3
        return (round(sum((x - mean) ** 2 for x in logs), 9), *(-p for p in patch))
    return key


def largest_patch(
    spec: Network,
    budget_bytes: int,
    max_patch: Sequence[int] = DEFAULT_MAX_PATCH,
    recipe: Recipe = PAPER,
    on_evaluate: Callable[[Candidate], None] | None = None,
    criterion: Criterion | None = None,
    median_shape: Sequence[float] | None = None,
) -> Plan:
    """The patch with the most voxels (up to ``max_patch`` per axis) whose step fits the budget.

    Args:
        spec: the network.
        budget_bytes: the card's memory.
        max_patch: the largest patch per axis ``(D, H, W)``, rounded down to ``2**(levels-1)``.
        recipe: the training step (its batch and precision among the rest).
        criterion: what must fit (default: device need, no margin).
        median_shape: the data's median image shape; patches follow its proportions.

    Raises:
        RevprofError: not even the smallest patch (one step per axis) fits.
    """
    criterion = criterion or Criterion()
    if hasattr(spec, "probed"):  # a --model network: the smallest patch its forward accepts
        spec = spec.probed(recipe.batch, recipe.targets, min(max_patch))
    step = 2 ** (spec.levels - 1)
    top = validate_patch(spec, [_round_down(s, step) for s in max_patch])
    predict = _Predictor(recipe, criterion, on_evaluate)
    plan = Plan(budget_bytes, "largest patch", [], 0, criterion=criterion)
    limit = plan.limit_bytes
    prefer = shape_preference(median_shape)
    floor = getattr(spec, "min_patch", None) or step  # a ModelSpec's lowest stage may need more
    shapes = _shapes_by_voxels(top, step, floor)
    counts = sorted(shapes, reverse=True)

    def check(patch: tuple[int, ...]) -> Candidate:
        candidate = predict(spec, patch)
        if candidate not in plan.checked:
            plan.checked.append(candidate)
        return candidate

    def finish(best: Candidate | None) -> Plan:
        plan.evaluated = len(predict.cache)
        plan.rejected = [c for c in plan.checked if not plan.fits(c)]
        if best is None:
            smallest = check((floor, floor, floor))
            if not plan.fits(smallest):
                raise RevprofError(
                    f"even the smallest patch {'x'.join(map(str, smallest.patch))} needs "
                    f"{format_bytes(criterion.need(smallest))} by the {criterion.name} criterion, over "
                    f"{format_bytes(limit)} (the budget of {format_bytes(budget_bytes)} less a "
                    f"{100 * criterion.margin:g}% margin)")
            best = smallest
        plan.candidates = [best]
        return plan

    largest = check(top)
    if plan.fits(largest):
        plan.notes.append("the largest patch considered fits")
        return finish(largest)
    # the smallest patch: the answer's floor, and with the largest it gives every allocation's
    # size at any voxel count (a simulation at about half the voxels if the logs differ)
    smallest = check((floor, floor, floor))
    if not plan.fits(smallest):
        return finish(None)
    probe = smallest
    model = _LogModel(predict.log(spec, probe.patch), probe.voxels, predict.log(spec, top), largest.voxels)
    if not model.exact:
        half = max((v for v in counts if v <= largest.voxels // 2), default=counts[-1])
        probe = check(min(shapes[half], key=prefer))
        model = _LogModel(predict.log(spec, probe.patch), probe.voxels, predict.log(spec, top),
                          largest.voxels)
    conf = parse_alloc_conf(alloc_conf_of(criterion.alloc_conf))
    if not model.exact:
        plan.notes.append("the two simulated allocation logs differ in structure; candidates are "
                          "simulated one by one from the largest voxel count down")
        for voxels in counts:
            candidate = check(min(shapes[voxels], key=prefer))
            if plan.fits(candidate):
                return finish(candidate)
        return finish(None)
    # propose from synthesised logs, largest voxel count first; verify each proposal
    for voxels in counts:
        if voxels > largest.voxels:
            continue
        events = model.events(voxels)
        peak = _tensor_peak(events)
        plan.modelled += 1
        if peak > limit:
            continue  # reserved >= allocated, so no criterion can fit
        card = criterion.allocator_card()
        replayed = (replay(events, conf, capacity=card)
                    if criterion.name != "allocated" or card is not None else None)
        reserved = replayed.max_reserved_bytes if replayed is not None else 0
        patch = min(shapes[voxels], key=prefer)
        proposal = predict.modelled(spec, patch, peak, reserved, largest.params,
                                    oom=replayed is not None and replayed.oom)
        if not plan.fits(proposal):
            continue
        real = check(patch)
        same = (real.peak_bytes, real.reserved_bytes if replayed is not None else 0) == (peak, reserved)
        plan.notes.append(f"{plan.modelled} voxel counts evaluated from allocation logs synthesised "
                          f"from two simulations ({'x'.join(map(str, probe.patch))} and "
                          f"{'x'.join(map(str, top))}); the proposal {'x'.join(map(str, patch))} was "
                          "simulated" + (" and matched the synthesised log to the byte" if same
                                         else " and differed from the synthesised log"))
        if plan.fits(real):
            return finish(real)
    return finish(None)


def scaled(spec: ArchSpec, scale: float) -> ArchSpec:
    """``spec`` with its widths scaled (rounded to even numbers, at least 2) and the GroupNorm
    groups re-derived for them (the paper's 30 where they fit)."""
    from revprof.spec import default_groups

    if scale == 1.0:
        return spec
    widths = tuple(max(2, int(round(w * scale / 2)) * 2) for w in spec.widths)
    return replace(spec, widths=widths, groups=default_groups(spec.arch, widths))


def best_networks(
    spec: ArchSpec,
    patch: Sequence[int],
    budget_bytes: int,
    max_depth: int = 8,
    width_scales: Sequence[float] = WIDTH_SCALES,
    search_depth: bool = True,
    search_width: bool = True,
    recipe: Recipe = PAPER,
    top: int = 5,
    on_evaluate: Callable[[Candidate], None] | None = None,
    criterion: Criterion | None = None,
) -> Plan:
    """The networks with the most parameters that fit the budget at ``patch``.

    For each width scale of ``spec`` (if ``search_width``; narrowest first, stopping at the first
    scale whose one-block network misses), the largest uniform depth ``1..max_depth`` that fits
    (if ``search_depth``; the deepest is tried first, then a binary search). Reversibility, arch
    and everything else stay as in ``spec``; widths are rescaled with :func:`scaled`.
    """
    patch = validate_patch(spec, patch)
    criterion = criterion or Criterion()
    predict = _Predictor(recipe, criterion, on_evaluate)

    def fits(candidate: Candidate) -> bool:
        return criterion.fits(candidate, budget_bytes)

    scales = width_scales if search_width else (1.0,)
    depths_allowed = spec.arch == "revunet" and search_depth
    fitting: list[Candidate] = []
    seen: set[tuple[int, ...]] = set()
    for scale in sorted(scales):  # narrowest first: once the shallowest net misses, wider ones do too
        base = scaled(spec, scale)
        if base.widths in seen:
            continue
        seen.add(base.widths)
        shallowest = predict(base.with_depth(1) if depths_allowed else base, patch)
        if not fits(shallowest):
            break
        fitting.append(shallowest)
        if not depths_allowed:
            continue
        deepest = predict(base.with_depth(max_depth), patch)
        if fits(deepest):  # common for reversible nets: depth costs little
            fitting.append(deepest)
            continue
        low, high = 1, max_depth - 1  # low: deepest known to fit
        while low < high:
            middle = (low + high + 1) // 2
            candidate = predict(base.with_depth(middle), patch)
            if fits(candidate):
                low = middle
                fitting.append(candidate)
            else:
                high = middle - 1
    fitting.sort(key=lambda c: (-c.params, criterion.need(c)))
    question = "best network" if search_width or search_depth else "fits"
    rejected = sorted((c for c in predict.cache.values() if not fits(c)), key=criterion.need)
    return Plan(budget_bytes, question, fitting[:top], len(predict.cache), rejected,
                criterion=criterion, checked=list(predict.cache.values()))


def largest_batch(
    spec: Network,
    patch: Sequence[int],
    budget_bytes: int,
    recipe: Recipe = PAPER,
    max_batch: int = 256,
    on_evaluate: Callable[[Candidate], None] | None = None,
    criterion: Criterion | None = None,
) -> Plan:
    """The largest batch (at most ``max_batch``) whose training step (``recipe`` at that batch) at
    ``patch`` fits the budget by ``criterion``: doubling until a batch misses, then a binary search
    (memory grows with the batch).

    ``spec`` may also be a :class:`~revprof.nn.factory.ModelSpec`. The batch is in the question
    (``largest batch: N``); every batch simulated is in ``checked``.

    Raises:
        RevprofError: not even batch 1 fits.
    """
    patch = validate_patch(spec, patch)
    criterion = criterion or Criterion()
    predictors: dict[int, _Predictor] = {}
    plan = Plan(budget_bytes, "largest batch", [], 0, criterion=criterion)

    def predict(batch: int) -> Candidate:
        if batch not in predictors:
            predictors[batch] = _Predictor(replace(recipe, batch=batch), criterion,
                                           on_evaluate)
            plan.checked.append(predictors[batch](spec, patch))
            plan.notes.append(f"batch {batch}: {format_bytes(criterion.need(plan.checked[-1]))}")
        return predictors[batch](spec, patch)

    first = predict(1)
    if not plan.fits(first):
        raise RevprofError(f"even batch 1 at patch {'x'.join(map(str, patch))} needs "
                           f"{format_bytes(criterion.need(first))} by the {criterion.name} criterion, "
                           f"over {format_bytes(plan.limit_bytes)}")
    low, high = 1, None  # low fits; high misses
    while high is None and low < max_batch:
        trial = min(2 * low, max_batch)
        if plan.fits(predict(trial)):
            low = trial
        else:
            high = trial
    while high is not None and high - low > 1:
        middle = (low + high) // 2
        if plan.fits(predict(middle)):
            low = middle
        else:
            high = middle
    plan.question = f"largest batch: {low}"
    plan.candidates = [predict(low)]
    plan.evaluated = len(predictors)
    plan.rejected = [c for c in plan.checked if not plan.fits(c)]
    return plan
