"""The memory-budget planner: what fits in N GiB?

Two questions, both answered with exact predictions from the simulate backend:

- :func:`largest_patch`: the largest patch for a fixed network. Like nnU-Net's planner, it starts
  from a maximal patch and shrinks the longest axis one step (``2**(levels-1)`` voxels) at a time,
  but it jumps ahead using the measured bytes per voxel and then verifies.
- :func:`best_networks`: for a fixed patch, the deepest and widest networks that fit, found by a
  binary search over depth for each width scale (peak memory grows monotonically with both).

Predictions are cached per (spec, patch, batch, precision) within a planner run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from revprof.errors import RevprofError
from revprof.memory.measure import measure_memory
from revprof.spec import ArchSpec, validate_patch

DEFAULT_MAX_PATCH = (240, 240, 160)
"""The BraTS field of view (240×240×155) rounded up to a multiple of 16 along z."""

WIDTH_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


@dataclass(frozen=True)
class Candidate:
    """One evaluated configuration."""

    spec: ArchSpec
    patch: tuple[int, int, int]
    peak_bytes: int
    params: int

    @property
    def voxels(self) -> int:
        return self.patch[0] * self.patch[1] * self.patch[2]


@dataclass
class Plan:
    """The planner's answer: candidates that fit, best first, and what it evaluated."""

    budget_bytes: int
    question: str
    candidates: list[Candidate]
    evaluated: int
    rejected: list[Candidate] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        def row(c: Candidate) -> dict[str, object]:
            return {"spec": c.spec.to_dict(), "spec_words": c.spec.describe(), "patch": list(c.patch),
                    "peak_bytes": c.peak_bytes, "params": c.params}

        return {"budget_bytes": self.budget_bytes, "question": self.question,
                "evaluated": self.evaluated, "candidates": [row(c) for c in self.candidates]}


class _Predictor:
    """Cached simulate predictions."""

    def __init__(self, batch: int, precision: str, on_evaluate: Callable[[Candidate], None] | None) -> None:
        self.batch = batch
        self.precision = precision
        self.cache: dict[tuple[str, tuple[int, int, int]], Candidate] = {}
        self.on_evaluate = on_evaluate or (lambda candidate: None)

    def __call__(self, spec: ArchSpec, patch: tuple[int, int, int]) -> Candidate:
        key = (spec.to_json(), patch)
        if key not in self.cache:
            report = measure_memory(spec, patch, batch=self.batch, precision=self.precision,
                                    backend="simulate")
            self.cache[key] = Candidate(spec, patch, report.peak_bytes, report.params)
            self.on_evaluate(self.cache[key])
        return self.cache[key]


def _round_down(size: int, step: int) -> int:
    return max(step, size // step * step)


def largest_patch(
    spec: ArchSpec,
    budget_bytes: int,
    max_patch: Sequence[int] = DEFAULT_MAX_PATCH,
    batch: int = 1,
    precision: str = "fp32",
    on_evaluate: Callable[[Candidate], None] | None = None,
) -> Plan:
    """The largest patch (shrinking the longest axis first) whose training step fits the budget.

    Raises:
        RevprofError: not even the smallest patch (one step per axis) fits.
    """
    step = 2 ** (spec.levels - 1)
    patch = tuple(_round_down(s, step) for s in validate_patch(spec, [_round_down(s, step) for s in max_patch]))
    predict = _Predictor(batch, precision, on_evaluate)
    smallest = (step, step, step)
    floor = predict(spec, smallest)
    if floor.peak_bytes > budget_bytes:
        raise RevprofError(f"even the smallest patch {'x'.join(map(str, smallest))} needs "
                           f"{floor.peak_bytes / 2**30:.2f} GiB, over the budget of "
                           f"{budget_bytes / 2**30:.2f} GiB")
    current = predict(spec, patch)
    rejected = []
    while current.peak_bytes > budget_bytes:
        rejected.append(current)
        # bytes per voxel above the fixed cost (parameters, optimizer state) guide the jump
        per_voxel = max(1.0, (current.peak_bytes - floor.peak_bytes) / max(1, current.voxels - floor.voxels))
        target_voxels = floor.voxels + (budget_bytes - floor.peak_bytes) / per_voxel
        dims = list(current.patch)
        while dims[0] * dims[1] * dims[2] > target_voxels and max(dims) > step:
            axis = max(range(3), key=lambda a: (dims[a], -a))
            dims[axis] -= step
        if tuple(dims) == current.patch:  # the estimate was optimistic: one step on the longest axis
            axis = max(range(3), key=lambda a: (dims[a], -a))
            dims[axis] -= step
        current = predict(spec, (dims[0], dims[1], dims[2]))
    # the jump may have undershot: grow back the shortest-reduced axes while it still fits
    improved = True
    while improved:
        improved = False
        dims = list(current.patch)
        for axis in sorted(range(3), key=lambda a: (dims[a], a)):
            if dims[axis] + step > patch[axis]:
                continue
            trial = list(dims)
            trial[axis] += step
            candidate = predict(spec, (trial[0], trial[1], trial[2]))
            if candidate.peak_bytes <= budget_bytes:
                current, improved = candidate, True
                break
            rejected.append(candidate)
    return Plan(budget_bytes, "largest patch", [current], len(predict.cache), rejected)


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
    batch: int = 1,
    precision: str = "fp32",
    top: int = 5,
    on_evaluate: Callable[[Candidate], None] | None = None,
) -> Plan:
    """The networks with the most parameters that fit the budget at ``patch``.

    For each width scale of ``spec`` (if ``search_width``; narrowest first, stopping at the first
    scale whose one-block network misses), the largest uniform depth ``1..max_depth`` that fits
    (if ``search_depth``; the deepest is tried first, then a binary search). Reversibility, arch
    and everything else stay as in ``spec``; widths are rescaled with :func:`scaled`.
    """
    patch = validate_patch(spec, patch)
    predict = _Predictor(batch, precision, on_evaluate)
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
        if shallowest.peak_bytes > budget_bytes:
            break
        fitting.append(shallowest)
        if not depths_allowed:
            continue
        deepest = predict(base.with_depth(max_depth), patch)
        if deepest.peak_bytes <= budget_bytes:  # common for reversible nets: depth costs little
            fitting.append(deepest)
            continue
        low, high = 1, max_depth - 1  # low: deepest known to fit
        while low < high:
            middle = (low + high + 1) // 2
            candidate = predict(base.with_depth(middle), patch)
            if candidate.peak_bytes <= budget_bytes:
                low = middle
                fitting.append(candidate)
            else:
                high = middle - 1
    fitting.sort(key=lambda c: (-c.params, c.peak_bytes))
    question = "best network" if search_width or search_depth else "fits"
    rejected = sorted((c for c in predict.cache.values() if c.peak_bytes > budget_bytes),
                      key=lambda c: c.peak_bytes)
    return Plan(budget_bytes, question, fitting[:top], len(predict.cache), rejected)
