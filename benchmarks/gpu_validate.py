"""Predicted (simulate) vs measured (CUDA) peak training memory, in one command.

On a machine with a CUDA GPU, from the repository root:

    python benchmarks/gpu_validate.py            # 24 configurations, a few minutes on an H200
    python benchmarks/gpu_validate.py --quick    # 6 configurations, about a minute
    python benchmarks/gpu_validate.py --list     # print the configurations; needs no GPU

It measures the paper's revunet (60-120-240-360-480) under reversible / plain / checkpointed
execution × 1–4 blocks per level × 64³ / 128³ × fp32 / bf16 (a balanced half of the 48 by
default, every execution, depth, patch and precision present) and writes
``benchmarks/results/gpu-<device>.json`` and ``.md``: per configuration the predicted
allocated bytes, the measured ``max_memory_allocated`` and ``max_memory_reserved``, the
untracked bytes (allocator peak beyond the tensors the tracker saw: cuDNN workspaces, kernel
temporaries), whether the reversible backward's gradient reuse was active, the relative
error, and the predicted reserved bytes (caching-allocator model) with their error. It also records the CUDA context size (``torch.cuda.mem_get_info`` before and after CUDA
initialisation) and the cuDNN settings.

Robust by construction: the files are rewritten after every configuration (a crash or Ctrl-C
keeps what was measured), an out-of-memory configuration is a row with status ``oom``, any
other failure a row with status ``failed`` and its error, and configurations left when the time
budget (``--budget-seconds``, default 420) runs out are rows with status ``skipped``.
Exit status: 0 when every measured configuration is within 5%, 2 otherwise, 1 without a GPU.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

TARGET = 0.05
EXECUTIONS = ("reversible", "plain", "checkpoint")
DEPTHS = (1, 2, 3, 4)
PATCHES = ((64, 64, 64), (128, 128, 128))
PRECISIONS = ("fp32", "bf16")


def configurations(quick: bool = False, every: bool = False) -> list[tuple[str, int, tuple[int, int, int], str]]:
    """``(execution, depth, patch, precision)`` to measure.

    Default: a balanced half of the full product (24); ``every``: all 48; ``quick``: 6
    (each execution at 64³ and 128³, depths 1 and 2, both precisions).
    """
    if quick:
        return [("reversible", 1, PATCHES[0], "fp32"), ("plain", 1, PATCHES[0], "bf16"),
                ("checkpoint", 2, PATCHES[0], "fp32"), ("reversible", 2, PATCHES[1], "bf16"),
                ("plain", 1, PATCHES[1], "fp32"), ("checkpoint", 1, PATCHES[1], "bf16")]
    rows = []
    for execution, depth, patch, precision in itertools.product(EXECUTIONS, DEPTHS, PATCHES, PRECISIONS):
        if not every and (depth + len(execution) + patch[0] // 64 + len(precision)) % 2:
            continue
        rows.append((execution, depth, patch, precision))
    return rows


def _nvidia_smi_used() -> int | None:
    """Bytes in use on GPU 0 per nvidia-smi (before this process touches CUDA), if available."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                              "--id=0"], capture_output=True, text=True, timeout=30, check=True)
        return int(float(out.stdout.strip().splitlines()[0]) * 2**20)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def _write(out: Path, name: str, record: dict[str, Any]) -> None:
    """Write ``<name>.json`` and ``<name>.md`` atomically (temporary file, then rename)."""
    out.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(record, indent=1) + "\n"), (".md", markdown(record))):
        temporary = out / f".{name}{suffix}.tmp"
        temporary.write_text(text)
        temporary.replace(out / f"{name}{suffix}")


def _gib(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**30:.3f}"


def markdown(record: dict[str, Any]) -> str:
    """The results as a markdown page: context, then one table row per configuration."""
    meta = record["meta"]
    ctx = meta.get("cuda_context", {})
    lines = [f"# Predicted vs measured peak training memory on {meta.get('device', '?')}", "",
             f"torch {meta.get('torch')}, CUDA {meta.get('cuda')}, cuDNN {meta.get('cudnn')}, "
             f"{meta.get('date')}; `{meta.get('command')}`; {record.get('seconds', 0):.0f} s.", "",
             f"CUDA context: {_gib(ctx.get('context_bytes'))} GiB (device memory in use before "
             f"CUDA initialisation {_gib(ctx.get('used_before_bytes'))} GiB, after "
             f"{_gib(ctx.get('used_after_init_bytes'))} GiB, after the cuDNN warm-up "
             f"{_gib(ctx.get('used_after_warmup_bytes'))} GiB; total {_gib(ctx.get('total_bytes'))} GiB).",
             "", "Sizes in GiB. *Untracked*: the allocator's peak beyond the tensors the tracker saw "
             "(workspaces, kernel temporaries). Error: (predicted − measured) / measured allocated.",
             "", "| execution | depth | patch | precision | status | predicted allocated | measured "
             "allocated | measured reserved | untracked | gradient reuse | error | predicted reserved "
             "| reserved error |",
             "|---|---:|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in record["results"]:
        error = "" if r.get("relative_error") is None else f"{100 * r['relative_error']:+.1f}%"
        reserved_error = ("" if r.get("reserved_relative_error") is None
                          else f"{100 * r['reserved_relative_error']:+.1f}%")
        reuse = {True: "active", False: "INACTIVE", None: "n/a"}[r.get("gradient_reuse")]
        lines.append(f"| {r['execution']} | {r['depth']} | {'x'.join(map(str, r['patch']))} | "
                     f"{r['precision']} | {r['status']} | {_gib(r.get('predicted_bytes'))} | "
                     f"{_gib(r.get('allocated_bytes'))} | {_gib(r.get('reserved_bytes'))} | "
                     f"{_gib(r.get('untracked_bytes'))} | {reuse} | {error} | "
                     f"{_gib(r.get('predicted_reserved_bytes'))} | {reserved_error} |")
    summary = record.get("summary", {})
    lines += ["", f"Worst |error| {100 * summary.get('worst_relative_error', 0):.1f}% over "
              f"{summary.get('measured', 0)} measured configurations (target ≤ {100 * TARGET:.0f}%); "
              f"{summary.get('oom', 0)} oom, {summary.get('failed', 0)} failed, "
              f"{summary.get('skipped', 0)} skipped."]
    return "\n".join(lines) + "\n"


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [abs(r["relative_error"]) for r in results if r.get("relative_error") is not None]
    return {"measured": len(errors), "worst_relative_error": max(errors, default=0.0),
            "within_target": all(e <= TARGET for e in errors),
            **{s: sum(r["status"] == s for r in results) for s in ("oom", "failed", "skipped")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="folder for gpu-<device>.json and .md (default benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="6 configurations instead of 24")
    parser.add_argument("--all", action="store_true", help="all 48 configurations")
    parser.add_argument("--list", action="store_true", help="print the configurations and exit (no GPU needed)")
    parser.add_argument("--budget-seconds", type=float, default=420.0,
                        help="start no configuration after this many seconds (default 420)")
    args = parser.parse_args(argv)
    plan = configurations(quick=args.quick, every=args.all)
    if args.list:
        for execution, depth, patch, precision in plan:
            print(f"{execution} depth {depth} {'x'.join(map(str, patch))} {precision}")
        print(f"{len(plan)} configurations")
        return 0

    used_before = _nvidia_smi_used()  # before torch initialises CUDA in this process
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:  # `python benchmarks/gpu_validate.py` from a checkout
        sys.path.insert(0, root)
    import torch

    if not torch.cuda.is_available():
        print("gpu_validate needs a CUDA GPU; none is visible (torch.cuda.is_available() is False)",
              file=sys.stderr)
        return 1
    from revprof import ArchSpec
    from revprof.memory import measure_memory
    from revprof.memory.measure import warm_up_cuda

    started = time.perf_counter()
    free, total = torch.cuda.mem_get_info()  # initialises CUDA: the context now exists
    used_after_init = total - free
    warm_up_cuda(torch.device("cuda"))
    free_warm, _ = torch.cuda.mem_get_info()
    device = torch.cuda.get_device_name()
    name = f"gpu-{_slug(device)}"
    meta = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "python": platform.python_version(),
            "machine": platform.machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python", "benchmarks/gpu_validate.py", *(argv or sys.argv[1:])]),
            "capacity_bytes": total, "cpus": os.cpu_count(),
            "cuda_context": {"used_before_bytes": used_before, "used_after_init_bytes": used_after_init,
                             "used_after_warmup_bytes": total - free_warm, "total_bytes": total,
                             "context_bytes": None if used_before is None else used_after_init - used_before,
                             "note": "used = total - free (cudaMemGetInfo); before = nvidia-smi, "
                                     "prior to CUDA initialisation in this process"}}
    results: list[dict[str, Any]] = []
    record: dict[str, Any] = {"meta": meta, "results": results, "summary": {}, "seconds": 0.0}
    for index, (execution, depth, patch, precision) in enumerate(plan):
        spec = ArchSpec.paper_revunet(depth).with_execution(execution)
        row: dict[str, Any] = {"execution": execution, "depth": depth, "patch": list(patch),
                               "precision": precision, "spec": spec.describe(), "status": "ok"}
        if time.perf_counter() - started > args.budget_seconds:
            row["status"] = "skipped"
            row["error"] = f"time budget of {args.budget_seconds:.0f} s spent"
        else:
            try:
                predicted = measure_memory(spec, patch, precision=precision, backend="simulate")
                row["predicted_bytes"] = predicted.peak_bytes
                row["predicted_reserved_bytes"] = predicted.predicted_reserved_bytes
                measured = measure_memory(spec, patch, precision=precision, backend="cuda")
                row.update({
                    "status": measured.status, "allocated_bytes": measured.peak_bytes,
                    "reserved_bytes": measured.reserved_bytes,
                    "tracked_bytes": measured.tracked_peak_bytes,
                    "untracked_bytes": measured.untracked_bytes,
                    "tracked_minus_predicted_bytes": measured.tracked_peak_bytes - predicted.peak_bytes,
                    "gradient_reuse": measured.gradient_reuse, "oom": measured.oom,
                    "peak_phase": measured.peak_phase, "peak_step": measured.peak_step,
                    "cudnn": {k: v for k, v in measured.environment.items() if "cudnn" in k or "tf32" in k},
                    "seconds": round(measured.seconds, 2),
                })
                if measured.status == "ok":
                    row["relative_error"] = (predicted.peak_bytes - measured.peak_bytes) / measured.peak_bytes
                    row["reserved_relative_error"] = (
                        (predicted.predicted_reserved_bytes - measured.reserved_bytes) / measured.reserved_bytes
                        if predicted.predicted_reserved_bytes is not None and measured.reserved_bytes else None)
            except KeyboardInterrupt:
                row.update(status="interrupted")
                results.append(row)
                break
            except Exception as error:  # noqa: BLE001 - a failed configuration is a row, the run goes on
                row.update(status="failed", error=f"{type(error).__name__}: {error}",
                           traceback=traceback.format_exc(limit=8))
            finally:
                torch.cuda.empty_cache()
        results.append(row)
        record["summary"], record["seconds"] = _summary(results), time.perf_counter() - started
        _write(args.out, name, record)
        print(f"[{index + 1}/{len(plan)}] " + json.dumps({k: row.get(k) for k in (
            "execution", "depth", "patch", "precision", "status", "predicted_bytes", "allocated_bytes",
            "reserved_bytes", "untracked_bytes", "gradient_reuse", "relative_error")}), flush=True)
    record["summary"], record["seconds"] = _summary(results), time.perf_counter() - started
    _write(args.out, name, record)
    summary = record["summary"]
    print(f"wrote {args.out / name}.json and .md: worst |error| "
          f"{100 * summary['worst_relative_error']:.1f}% over {summary['measured']} configurations")
    return 0 if summary["within_target"] else 2


if __name__ == "__main__":
    sys.exit(main())
