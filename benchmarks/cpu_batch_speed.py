"""CPU seconds per training step and per sample, one patch vs two or four per batch (issue 25).

PyTorch's CPU convolution chooses, by the shapes it is given, between oneDNN (``mkldnn``) and its
native im2col kernel (``slow_conv3d``). For the real-BraTS recipe's network at 48³, a batch of one
sends the 3×3×3 convolutions to the native kernel and a batch of two to oneDNN; this times both
side by side in one process and counts which kernel ran (PyTorch's profiler), so the recipe's
batch is chosen on a measurement.

Usage: ``.venv/bin/python benchmarks/cpu_batch_speed.py [--spec studies/brats2018-cpu.json]
[--patch 48] [--batches 1,2,4] [--steps 6]``; writes ``benchmarks/results/cpu_batch_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from revprof.nn import build_model
from revprof.step import Batch, TrainingStep
from revprof.train.specfile import read_spec_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cpu_batch_speed.json"
KERNELS = ("aten::mkldnn_convolution", "aten::slow_conv3d_forward")


def time_batch(spec_path: Path, patch: int, batch: int, steps: int) -> dict[str, float | int]:
    """Median wall seconds of ``steps`` training steps (the first left out) and the forward
    convolution kernels one step ran."""
    spec_file = read_spec_file(spec_path)
    spec, recipe = spec_file.spec, spec_file.settings.recipe.with_overrides({"batch": batch})
    torch.manual_seed(0)
    image = torch.randn(batch, spec.in_channels, patch, patch, patch)
    target = (torch.rand(batch, spec.out_channels, patch, patch, patch) > 0.7).float()
    step = TrainingStep(build_model(spec), recipe, spec.output_kind, "cpu")
    cpu = torch.device("cpu")
    seconds = []
    for index in range(steps):
        started = time.perf_counter()
        float(step([Batch(image, [target])], index, device=cpu))
        seconds.append(time.perf_counter() - started)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        float(step([Batch(image, [target])], steps, device=cpu))
    calls = {event.key: event.count for event in profiler.key_averages() if event.key in KERNELS}
    median = statistics.median(seconds[1:])
    return {"batch": batch, "seconds_per_step": round(median, 3),
            "seconds_per_sample": round(median / batch, 3),
            "onednn_convolutions": calls.get(KERNELS[0], 0),
            "native_convolutions": calls.get(KERNELS[1], 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "studies" / "brats2018-cpu.json")
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--batches", default="1,2,4")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = [time_batch(args.spec, args.patch, int(b), args.steps) for b in args.batches.split(",")]
    record = {"spec": str(args.spec), "patch": args.patch, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "cpus": os.cpu_count(), "machine": platform.processor(),
              "load_before": load_before,
              "load_after": os.getloadavg()[0], "rows": rows}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
