"""Rich tables for a :class:`MemoryReport`."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from revprof.evaluation.evaluate import mean_over_nonempty
from revprof.memory.cards import DeviceCapacity
from revprof.memory.device import DeviceClass, device_class_of, device_need
from revprof.memory.measure import MemoryReport
from revprof.spec import ArchSpec
from revprof.train.settings import TrainResult, TrainSettings
from revprof.units import format_bytes


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else ""


def _predicted_reserved_words(report: MemoryReport) -> str:
    """The allocator model's figure with its largest segment and fragmentation at the peak."""
    assert report.predicted_reserved_bytes is not None
    model = report.allocator or {}
    words = format_bytes(report.predicted_reserved_bytes)
    if model:
        words += (f" (largest segment {format_bytes(int(model['largest_segment_bytes']))}, "
                  f"{100 * float(model['fragmentation_at_peak']):.1f}% cached unused at the peak"
                  + (f", {model['config']}" if model.get("config") else "") + ")")
    return words


def _device_class(report: MemoryReport) -> DeviceClass:
    if report.device_memory is None:
        return "default"
    return device_class_of(DeviceCapacity(**report.device_memory))


def report_tables(report: MemoryReport) -> Group:
    """The headline, the breakdown at the peak and activation bytes per network part."""
    head = Table(title=f"{report.spec.describe()} · patch {'x'.join(map(str, report.patch))} · "
                       f"batch {report.batch} · {report.precision}", show_header=False)
    head.add_column("what")
    head.add_column("value", justify="right")
    if report.status == "oom" and report.oom and report.oom.get("predicted"):
        head.add_row("status", Text.assemble(("out of memory (predicted)", "bold red"),
                                             f": {report.oom['message'].removeprefix('predicted out of memory: ')}; "
                                             "the figures below are the whole step's, as on a card "
                                             "without a limit"))
    elif report.status == "oom" and report.oom:
        oom = report.oom
        requested = format_bytes(oom["requested_bytes"]) if oom.get("requested_bytes") else "unknown"
        capacity = format_bytes(oom["capacity_bytes"]) if oom.get("capacity_bytes") else "unknown"
        head.add_row("status", Text.assemble(("out of memory", "bold red"),
                                             f" (requested {requested}, device has {capacity}); "
                                             "figures below are up to that moment"))
    elif report.device_memory is not None:
        head.add_row("status", "fits the card (allocator replay)")
    head.add_row("peak memory", Text.assemble((format_bytes(report.peak_bytes), "bold"),
                                              f" ({report.peak_bytes:,} B)"))
    if report.reserved_bytes is not None:
        head.add_row("peak reserved (measured)", format_bytes(report.reserved_bytes))
    if report.predicted_reserved_bytes is not None:
        head.add_row("peak reserved (predicted)", _predicted_reserved_words(report))
        need = device_need(report.predicted_reserved_bytes, context=report.context_bytes,
                           device_class=_device_class(report))
        head.add_row("device need", need.words())
    if report.device_memory is not None:
        card = DeviceCapacity(**report.device_memory)
        retries = (report.allocator or {}).get("alloc_retries") or 0
        head.add_row("device memory", card.words() + (f"; the replay freed its cache and retried "
                                                      f"{retries} time(s)" if retries else ""))
    if report.untracked_bytes is not None and report.tracked_peak_bytes is not None:
        head.add_row("tracked peak (tensors)", format_bytes(report.tracked_peak_bytes))
        head.add_row("untracked (workspaces, kernel temporaries)", format_bytes(report.untracked_bytes))
    head.add_row("peak reached in" if report.untracked_bytes is None else "tracked peak reached in",
                 f"{report.peak_phase} of step {report.peak_step + 1}")
    if report.gradient_reuse is not None:
        head.add_row("gradient reuse", "active (reversible backward accumulates in place)"
                     if report.gradient_reuse else Text.assemble(
                         ("inactive", "bold yellow"), " (gradients copied: a larger peak)"))
    head.add_row("parameters", f"{report.params:,}")
    head.add_row("recipe", report.recipe.describe())
    if report.recipe.deep_supervision is None and len(report.spec.output_shapes(
            report.batch, report.patch)) > 1:
        weights = ", ".join(f"{w:.4g}" for w in report.recipe.ds_weights(
            len(report.spec.output_shapes(report.batch, report.patch))))
        head.add_row("deep supervision", f"nnU-Net's weights {weights} against nearest-downsampled "
                                         f"targets")
    head.add_row("backend", f"{report.backend} on {report.device}")
    breakdown = Table(title="at the peak" if report.untracked_bytes is None else "at the tracked peak")
    breakdown.add_column("category")
    breakdown.add_column("bytes", justify="right")
    breakdown.add_column("share", justify="right")
    for category, size in report.breakdown.items():
        breakdown.add_row(category.replace("_", " "), format_bytes(size),
                          _share(size, report.tracked_peak_bytes or report.peak_bytes))
    parts = Table(title="saved activations per part (end of forward)")
    parts.add_column("part")
    parts.add_column("bytes", justify="right")
    for part, size in report.saved_after_forward.items():
        parts.add_row(part, format_bytes(size))
    return Group(head, breakdown, parts)


def training_tables(spec: ArchSpec, settings: TrainSettings, result: TrainResult) -> Group:
    """The outcome of a short training run: status, memory, speed and Dice per case and region."""
    recipe = settings.recipe
    head = Table(title=f"{spec.describe()} · {recipe.steps} steps · patch "
                       f"{'x'.join(map(str, settings.patch))} · {recipe.precision}", show_header=False)
    head.add_column("what")
    head.add_column("value", justify="right")
    head.add_row("status", result.status + (f" ({result.error})" if result.error else ""))
    head.add_row("recipe", f"{recipe.describe()}; {recipe.run_words()}")
    head.add_row("peak memory (measured)", format_bytes(result.peak_bytes))
    if result.predicted_peak_bytes is not None:
        head.add_row("peak memory (predicted)", format_bytes(result.predicted_peak_bytes))
    head.add_row("seconds per step", f"{result.seconds_per_step:.3f}")
    head.add_row("voxels per second", f"{result.voxels_per_second:,.0f}")
    if result.losses:
        head.add_row("loss first → last", f"{result.losses[0]:.4f} → {result.losses[-1]:.4f}")
    head.add_row("device", result.device)
    if not result.dice_per_case:
        head.add_row("Dice", "no held-out cases scored" if result.status == "ok" else f"not scored ({result.status})")
        return Group(head)
    dice = Table(title=f"Dice on {result.val_cases} held-out case(s), threshold 0.5")
    for column in ("case", "WT", "TC", "ET"):
        dice.add_column(column, justify="left" if column == "case" else "right")
    regions = ("wt", "tc", "et")
    for case in result.dice_per_case:
        dice.add_row(case.case, *(f"{getattr(case, r):.3f}" + ("*" if r in case.empty else "")
                                  for r in regions))
    if result.dice:
        dice.add_section()
        dice.add_row("mean", *(f"{result.dice[r]:.3f}" for r in regions))
        dice.add_row("mean of regions", f"{result.dice['mean']:.3f}", "", "")
        empty = {r: sum(r in c.empty for c in result.dice_per_case) for r in regions}
        if any(empty.values()):
            nonempty = [mean_over_nonempty([(getattr(c, r), r in c.empty)
                                            for c in result.dice_per_case]) for r in regions]
            dice.add_row("mean, non-empty references",
                         *("-" if v is None else f"{v:.3f}" for v in nonempty))
            dice.caption = empty_reference_note(empty)
    return Group(head, dice)


def empty_reference_note(empty: dict[str, int]) -> str:
    """The footnote for Dice values marked ``*``: which regions were empty in how many
    references, and how BraTS scores them."""
    counts = ", ".join(f"{r.upper()} in {n}" for r, n in empty.items() if n)
    return (f"* region absent from the reference ({counts} case(s)): BraTS scores its Dice 1 when "
            f"the prediction is empty too, 0 otherwise; the last row leaves such cases out")
