"""Cost of the caching-allocator model: seconds per replay of the paper network's step, beside
the simulation that produces the allocation log, at 128³ and at the full BraTS field of view
(240×240×160), for torch's default allocator options and ``expandable_segments:True``, without a
device limit and on an RTX 3060 less a 384 MiB CUDA-context allowance (where the full field of view
takes the out-of-memory path: freeing cached segments, retrying, running out). Prints a markdown
table for docs/benchmarks.md and writes benchmarks/results/allocator_cost.json.

    python benchmarks/allocator_cost.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from revprof import ArchSpec
from revprof.memory import measure_memory
from revprof.memory.allocator import parse_alloc_conf, replay
from revprof.memory.cards import CARDS
from revprof.memory.device import CONTEXT_BYTES

PATCHES = ((128, 128, 128), (240, 240, 160))
CONFS = ("", "expandable_segments:True")
RTX3060 = CARDS["rtx3060"].with_usable(CARDS["rtx3060"].total_bytes - CONTEXT_BYTES["consumer"])
DEVICES = ((None, "no limit"), (RTX3060, "rtx3060 less 384 MiB context"))
REPEATS = 5


def main() -> int:
    rows = []
    for patch in PATCHES:
        started = time.process_time()
        report = measure_memory(ArchSpec.paper_revunet(), patch, backend="simulate")
        simulate = time.process_time() - started
        events = [e[:3] for e in report.allocation_log or []]
        for (capacity, device), conf in ((d, c) for d in DEVICES for c in CONFS):
            config = parse_alloc_conf(conf)
            times = []
            for _ in range(REPEATS):
                started = time.process_time()
                prediction = replay(events, config, capacity=capacity)
                times.append(time.process_time() - started)
            rows.append({"patch": list(patch), "conf": conf or "(defaults)", "device": device,
                         "events": len(events),
                         "simulate_cpu_seconds": simulate, "replay_cpu_seconds": sorted(times)[REPEATS // 2],
                         "peak_bytes": report.peak_bytes,
                         "predicted_reserved_bytes": prediction.max_reserved_bytes,
                         "largest_segment_bytes": prediction.largest_segment_bytes,
                         "fragmentation_at_peak": prediction.fragmentation_at_peak,
                         "oom": prediction.oom, "alloc_retries": prediction.alloc_retries})
    machine = (f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
               f"load average {os.getloadavg()[0]:.1f}")
    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    Path("benchmarks/results/allocator_cost.json").write_text(json.dumps({"machine": machine, "rows": rows},
                                                                         indent=2))
    print(f"Machine: {machine}; CPU seconds (process time), median of {REPEATS} replays.\n")
    print("| patch | allocator options | device | events | simulate s | replay s | replay / simulate | "
          "allocated GiB | reserved GiB | largest segment MiB | cached unused at peak | retries | OOM |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {'×'.join(map(str, r['patch']))} | {r['conf']} | {r['device']} | {r['events']:,} | "
              f"{r['simulate_cpu_seconds']:.2f} | {r['replay_cpu_seconds']:.3f} | "
              f"{r['replay_cpu_seconds'] / r['simulate_cpu_seconds']:.3f} | {r['peak_bytes'] / 2**30:.3f} | "
              f"{r['predicted_reserved_bytes'] / 2**30:.3f} | {r['largest_segment_bytes'] / 2**20:.0f} | "
              f"{100 * r['fragmentation_at_peak']:.1f}% | {r['alloc_retries']} | {'yes' if r['oom'] else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
