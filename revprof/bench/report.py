"""Benchmark results: the JSON record, the markdown tables and the generated part of the docs."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from revprof.bench.memory import PeakRow
from revprof.bounds import replace_file
from revprof.bench.peers import peer_note, versions
from revprof.bench.targets import TargetResult
from revprof.bench.timing import TimingResult

SCHEMA = 1
DOCS_START = "<!-- bench:start -->"
DOCS_END = "<!-- bench:end -->"
GIB = 2**30


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (or :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """The machine and software the run used."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": versions(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def build_record(command: str, quick: bool, plan: dict[str, Any], rows: Sequence[PeakRow],
                 timing: TimingResult | None, targets: Sequence[TargetResult],
                 cuda: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
    """The JSON-able record of one run."""
    return {
        "schema": SCHEMA,
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "seconds": round(seconds, 1),
        "machine": machine(),
        "plan": plan,
        "memory": [r.to_dict() for r in rows],
        "timing": timing.to_dict() if timing else None,
        "targets": [t.to_dict() for t in targets],
        "cuda": cuda,
    }


def write_json(record: dict[str, Any], path: Path) -> Path:
    replace_file(path, json.dumps(record, indent=1, sort_keys=False) + "\n", name=str(path),
                 make_folder=True)
    return path


# ---- markdown -------------------------------------------------------------------------------
def _unit(peaks: Sequence[int]) -> tuple[str, int]:
    """GiB, or MiB when every peak is below 1 GiB (the quick settings)."""
    return ("GiB", GIB) if max(peaks, default=0) >= GIB else ("MiB", 2**20)


def _gib(n: int, scale: int = GIB) -> str:
    return "OOM" if n < 0 else f"{n / scale:.2f}"


def _patch(p: Sequence[int]) -> str:
    return "×".join(map(str, p)) if len(set(p)) > 1 else f"{p[0]}³"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---"
                                                           for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _peer_order(rows: Sequence[PeakRow]) -> list[str]:
    order = ["reversible", "revtorch", "checkpoint", "plain"]
    present = {r.peer for r in rows}
    return [p for p in order if p in present] + sorted(present - set(order) - {"nonewnet"})


def memory_tables(rows: Sequence[PeakRow], table: str = "paper") -> list[str]:
    """One markdown table per patch: peak GiB per execution (columns) and depth (rows), with
    the reversible peak as a fraction of each peer's."""
    lines: list[str] = []
    selected = [r for r in rows if r.table == table]
    patches: list[list[int]] = []
    for r in selected:
        if r.patch not in patches:
            patches.append(r.patch)
    for patch in patches:
        here = [r for r in selected if r.patch == patch]
        peers = _peer_order(here)
        depths = sorted({r.depth for r in here if r.peer != "nonewnet"})
        peaks = {(r.peer, r.depth): r.peak_bytes for r in here}
        widths = next((r.widths for r in here if r.peer != "nonewnet"), [])
        unit, scale = _unit([r.peak_bytes for r in here])
        lines.append(f"**revunet {'-'.join(map(str, widths))}, patch {_patch(patch)}, batch 1, "
                     f"fp32** — peak {unit}")
        lines.append("")
        others = [p for p in peers if p != "reversible"]
        header = ["blocks/level", *peers, *[f"rev/{p}" for p in others if "reversible" in peers]]
        body = []
        for d in depths:
            row = [str(d)] + [_gib(peaks[(p, d)], scale) if (p, d) in peaks else "—" for p in peers]
            if "reversible" in peers:
                rev = peaks.get(("reversible", d))
                for p in others:
                    ref = peaks.get((p, d))
                    row.append(f"{rev / ref:.3f}" if rev and ref and ref > 0 else "—")
            body.append(row)
        lines += _table(header, body)
        nonewnet = [r for r in here if r.peer == "nonewnet"]
        if nonewnet:
            r = nonewnet[0]
            lines.append("")
            lines.append(f"No New-Net baseline ({'-'.join(map(str, r.widths))}, non-reversible): "
                         f"{_gib(r.peak_bytes, scale)} {unit}.")
        lines.append("")
    return lines


def depth_table(rows: Sequence[PeakRow]) -> list[str]:
    """Memory vs depth on the smaller network: peak GiB per execution and depth, and the
    reversible peak's growth per added block against the added state bytes."""
    here = [r for r in rows if r.table == "depth"]
    if not here:
        return []
    peers = _peer_order(here)
    depths = sorted({r.depth for r in here})
    peaks = {(r.peer, r.depth): r for r in here}
    first = here[0]
    unit, scale = _unit([r.peak_bytes for r in here])
    lines = [f"**Memory vs depth: revunet {'-'.join(map(str, first.widths))}, patch "
             f"{_patch(first.patch)}** — peak {unit}; the last column is the reversible peak's "
             "growth from the depth before as a multiple of the added parameter + gradient + "
             "Adam-state bytes", ""]
    body = []
    for i, d in enumerate(depths):
        row = [str(d)] + [_gib(peaks[(p, d)].peak_bytes, scale) if (p, d) in peaks else "—"
                          for p in peers]
        growth = "—"
        if i and ("reversible", d) in peaks and ("reversible", depths[i - 1]) in peaks:
            a, b = peaks[("reversible", depths[i - 1])], peaks[("reversible", d)]
            if b.state_bytes > a.state_bytes:
                growth = f"{(b.peak_bytes - a.peak_bytes) / (b.state_bytes - a.state_bytes):.3f}"
        body.append([*row, growth])
    lines += _table(["blocks/level", *peers, "rev growth / state"], body)
    lines.append("")
    return lines


def timing_table(timing: TimingResult | None) -> list[str]:
    if timing is None:
        return []
    clock = ("CPU time of the one compute thread" if timing.clock == "thread_time"
             else "CUDA events")
    lines = [f"**Step time: revunet {'-'.join(map(str, timing.widths))}, {timing.depth} block(s) "
             f"per level, patch {_patch(timing.patch)}, batch 1, fp32, on {timing.device}** — "
             f"{timing.repetitions} alternated steps per execution after {timing.warmup} warm-up "
             f"steps, {clock}; ratios of medians (absolute times on a shared machine are noise)", ""]
    body = []
    for peer in timing.median:
        vp, vr = timing.ratio_vs_plain.get(peer), timing.ratio_vs_revtorch.get(peer)
        body.append([peer, f"{vp:.3f}" if vp is not None else "—", f"{vr:.3f}" if vr is not None else "—"])
    lines += _table(["execution", "× plain", "× RevTorch"], body)
    lines.append("")
    return lines


def targets_table(targets: Sequence[TargetResult], quick: bool = False) -> list[str]:
    """The targets with their verdicts; with the quick settings (tiny networks, not the targets'
    patch and depths) the ratios are shown but judged by no verdict."""
    body = []
    for t in targets:
        verdict = {True: "pass", False: "**fail**", None: "not measured"}[t.passed]
        if quick and t.passed is not None:
            verdict = "not judged (quick settings)"
        detail = ", ".join(f"{k}: {v:.3f}" for k, v in t.detail.items())
        body.append([t.description, f"≤ {t.limit:.2f}", "—" if t.ratio is None else f"{t.ratio:.3f}",
                     verdict, detail or "—"])
    return _table(["target", "limit", "worst ratio", "verdict", "measured"], body) + [""]


def markdown(record: dict[str, Any]) -> str:
    """The generated benchmark section: machine, versions, command, tables."""
    rows = [PeakRow.from_dict(r) for r in record["memory"]]
    timing = TimingResult.from_dict(record["timing"]) if record.get("timing") else None
    targets = [TargetResult.from_dict(t) for t in record["targets"]]
    m = record["machine"]
    v = m.get("versions", {})
    lines = [
        f"Generated by `{record['command']}` on {record['date']} in {record['seconds']:.0f} s"
        + (" (quick settings)" if record.get("quick") else "") + ".",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}",
        f"- Versions: torch {v.get('torch')}, revtorch {v.get('revtorch') or 'not installed'}, "
        f"revprof {v.get('revprof', '?')}",
        "- Memory: `simulate` backend (fake tensors, every storage rounded as the CUDA caching "
        "allocator rounds it, 512 B), two training steps (forward, soft Dice, backward, Adam "
        "foreach lr 1e-4 wd 1e-5, zero_grad set_to_none); the peak of both.",
        "- Peers: " + "; ".join(f"`{p}`: {peer_note(p)}" for p in
                                ("reversible", "revtorch", "checkpoint", "plain", "nonewnet")),
        "",
        "### Targets",
        "",
        *targets_table(targets, quick=bool(record.get("quick"))),
        "### Peak memory",
        "",
        *memory_tables(rows, "paper"),
        *depth_table(rows),
        "### Step time",
        "",
        *timing_table(timing),
    ]
    cuda = record.get("cuda")
    lines += ["### CUDA", ""]
    if cuda and cuda.get("run"):
        lines.append(f"Measured on {cuda.get('device')} with the CUDA caching allocator "
                     "(`max_memory_allocated`) and CUDA events.")
        lines.append("")
        lines += memory_tables([PeakRow.from_dict(r) for r in cuda.get("memory", [])], "paper")
        if cuda.get("timing"):
            lines += timing_table(TimingResult.from_dict(cuda["timing"]))
    else:
        reason = (cuda or {}).get("reason", "not requested (run with --cuda on a machine with a GPU)")
        lines.append(f"Not run: {reason}.")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def update_docs(path: Path, section: str, title: str = "# Benchmarks") -> Path:
    """Replace what lies between the bench markers of ``path`` with ``section``, keeping
    everything outside them; create the file (or append the markers) when missing."""
    block = f"{DOCS_START}\n{section.rstrip()}\n{DOCS_END}"
    if path.exists():
        text = path.read_text()
        start, end = text.find(DOCS_START), text.find(DOCS_END)
        if start != -1 and end != -1 and end > start:
            text = text[:start] + block + text[end + len(DOCS_END):]
        else:
            text = text.rstrip("\n") + "\n\n## revprof bench\n\n" + block + "\n"
    else:
        text = (f"{title}\n\n## revprof bench\n\nThe section between the markers is written by "
                f"`revprof bench`; edit outside them.\n\n{block}\n")
    return replace_file(path, text, name=str(path), make_folder=True)
