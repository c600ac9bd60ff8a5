"""Memory against depth (blocks per level) and against patch size, per execution, of the
reference network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from revprof.report.panels.common import Series, patch_text, variants
from revprof.report.panels.memory import Memory
from revprof.recipe import Recipe
from revprof.spec import ArchSpec

DEPTHS = (1, 2, 3, 4)
MAX_PATCH_SIZES = 3


class DepthInfo(NamedTuple):
    """Peak memory of the reference network over blocks per level, per execution."""

    network: str
    patch: tuple[int, int, int]
    depths: tuple[int, ...]
    series: tuple[Series, ...]
    budget_bytes: int | None


class PatchInfo(NamedTuple):
    """Peak memory of the reference network over patch sizes, per execution.

    ``edges`` is the cube root of the voxel count (the edge of a cubic patch), so cubic growth
    shows as a curve.
    """

    network: str
    patches: tuple[tuple[int, int, int], ...]
    labels: tuple[str, ...]
    edges: tuple[float, ...]
    series: tuple[Series, ...]
    budget_bytes: int | None


def depth_info(spec: ArchSpec, patch: tuple[int, int, int], recipe: Recipe,
               budget: int | None, memory: Memory) -> DepthInfo | None:
    """Peaks over depths 1-4 (blocks per level, encoder and decoder) for each execution."""
    if spec.arch != "revunet":
        return None
    series = []
    for name, variant in variants(spec):
        values = tuple(memory.peak((variant.with_depth(d), patch, recipe)) for d in DEPTHS)
        series.append(Series(name, values))
    words = f"revunet {'-'.join(map(str, spec.widths))}"
    return DepthInfo(words, patch, DEPTHS, tuple(series), budget)


def patch_sizes(spec: ArchSpec, patch: tuple[int, int, int],
                extra: Sequence[tuple[int, int, int]] = ()) -> list[tuple[int, int, int]]:
    """Cubic patches from half the reference patch's edge up to it (at most three, multiples of
    ``2**(levels-1)``), the reference patch itself and other patches the trials used, in order
    of voxel count."""
    unit = 2 ** (spec.levels - 1)
    top = max(unit, int(_edge(patch) // unit) * unit)
    low = max(unit, int(round(top / 2 / unit)) * unit)
    if MAX_PATCH_SIZES == 1 or low == top:
        edges = [top]
    else:
        step = (top - low) / (MAX_PATCH_SIZES - 1)
        edges = sorted({int(round((low + i * step) / unit)) * unit for i in range(MAX_PATCH_SIZES)})
    sizes = {(e, e, e) for e in edges} | {tuple(patch)} | {tuple(p) for p in extra}
    return sorted(sizes, key=lambda p: (p[0] * p[1] * p[2], p))  # type: ignore[arg-type]


def _edge(patch: Sequence[int]) -> float:
    """The edge of the cube with as many voxels as ``patch`` (exact for cubes)."""
    if len(set(patch)) == 1:
        return float(patch[0])
    return float(patch[0] * patch[1] * patch[2]) ** (1 / 3)


def patch_info(spec: ArchSpec, patch: tuple[int, int, int], recipe: Recipe,
               budget: int | None, memory: Memory, extra: Sequence[tuple[int, int, int]] = ()
               ) -> PatchInfo:
    """Peaks over patch sizes, reversible and plain (plain and checkpoint for nonewnet)."""
    patches = patch_sizes(spec, patch, extra)
    series = []
    for name, variant in variants(spec)[:2]:
        series.append(Series(name, tuple(memory.peak((variant, p, recipe)) for p in patches)))
    return PatchInfo(spec.describe().rsplit(" ", 1)[0] if spec.arch == "revunet" else spec.describe(),
                     tuple(patches), tuple(patch_text(p) for p in patches),
                     tuple(round(_edge(p), 3) for p in patches), tuple(series), budget)
