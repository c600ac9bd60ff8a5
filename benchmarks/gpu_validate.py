"""Predicted (simulate) vs measured (CUDA ``max_memory_allocated``) peak training memory.

Run on a machine with a CUDA GPU:

    python benchmarks/gpu_validate.py [--out benchmarks/results]

It measures reversible / plain / checkpointed execution × depths 1–4 × two patch sizes × fp32 and
bf16 (subsampled to keep it short; every execution, depth, patch and precision appears), and writes
``gpu_validate-<device>.json`` and ``.md`` with the relative error of each prediction. The target is
within 5% on every configuration; see docs/memory-model.md for the known sources of error.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from revprof import ArchSpec
from revprof.memory import measure_memory


def configurations() -> list[tuple[ArchSpec, tuple[int, int, int], str]]:
    """At least 12 configurations covering every execution, depth 1–4, two patches, two precisions."""
    rows = []
    for execution, depth, patch, precision in itertools.product(
        ("reversible", "plain", "checkpoint"), (1, 2, 3, 4), ((64, 64, 64), (128, 128, 128)), ("fp32", "bf16")
    ):
        if (depth + len(execution) + patch[0] // 64 + len(precision)) % 2:  # a balanced half
            continue
        rows.append((ArchSpec.paper_revunet(depth).with_execution(execution), patch, precision))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_validate needs a CUDA GPU; none is visible", file=sys.stderr)
        return 1
    device = torch.cuda.get_device_name()
    results = []
    for spec, patch, precision in configurations():
        predicted = measure_memory(spec, patch, precision=precision, backend="simulate")
        try:
            measured = measure_memory(spec, patch, precision=precision, backend="cuda")
            allocated, reserved = measured.peak_bytes, measured.reserved_bytes
        except torch.cuda.OutOfMemoryError:
            allocated = reserved = None
        torch.cuda.empty_cache()
        error = None if allocated is None else (predicted.peak_bytes - allocated) / allocated
        row = {"spec": spec.describe(), "patch": list(patch), "precision": precision,
               "predicted_bytes": predicted.peak_bytes, "allocated_bytes": allocated,
               "reserved_bytes": reserved, "relative_error": error,
               "predicted_reserved_bytes": predicted.predicted_reserved_bytes,
               "reserved_relative_error": None if reserved is None else
               (predicted.predicted_reserved_bytes - reserved) / reserved}
        results.append(row)
        print(json.dumps(row), flush=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    meta = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "python": platform.python_version(), "date": stamp}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "gpu_validate-" + device.replace(" ", "_")
    (args.out / f"{name}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [f"# Predicted vs measured peak memory on {device}", "", f"torch {meta['torch']}, CUDA "
             f"{meta['cuda']}, cuDNN {meta['cudnn']}, {stamp}", "",
             "| network | patch | precision | predicted GiB | allocated GiB | error | predicted reserved GiB "
             "| reserved GiB | reserved error |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        alloc = "OOM" if r["allocated_bytes"] is None else f"{r['allocated_bytes'] / 2**30:.3f}"
        err = "" if r["relative_error"] is None else f"{100 * r['relative_error']:+.1f}%"
        res = "OOM" if r["reserved_bytes"] is None else f"{r['reserved_bytes'] / 2**30:.3f}"
        res_err = "" if r["reserved_relative_error"] is None else f"{100 * r['reserved_relative_error']:+.1f}%"
        lines.append(f"| {r['spec']} | {'x'.join(map(str, r['patch']))} | {r['precision']} | "
                     f"{r['predicted_bytes'] / 2**30:.3f} | {alloc} | {err} | "
                     f"{r['predicted_reserved_bytes'] / 2**30:.3f} | {res} | {res_err} |")
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    worst = max((abs(r["relative_error"]) for r in results if r["relative_error"] is not None), default=0)
    print(f"worst relative error {100 * worst:.1f}% over {len(results)} configurations")
    return 0 if worst <= 0.05 else 2


if __name__ == "__main__":
    sys.exit(main())
