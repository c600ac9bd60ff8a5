"""Peak memory of the paper's revunet at 128³ (fp32, simulate) for 1–4 blocks per level and each
execution, and the time `revprof measure` takes at 160×192×160. Prints a markdown section for
docs/benchmarks.md and writes benchmarks/results/memory_depth.json.

    python benchmarks/memory_depth.py
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from revprof import ArchSpec
from revprof.memory import measure_memory

EXECUTIONS = ("reversible", "plain", "checkpoint")


def main() -> int:
    peaks = {e: [measure_memory(ArchSpec.paper_revunet(d).with_execution(e), 128, backend="simulate").peak_bytes
                 for d in (1, 2, 3, 4)] for e in EXECUTIONS}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "revprof", "measure", "--patch", "160,192,160", "--backend",
                    "simulate", "--json"], check=True, capture_output=True)
    fov_seconds = time.perf_counter() - started
    growth = {e: peaks[e][3] / peaks[e][0] for e in EXECUTIONS}
    added = {e: peaks[e][3] - peaks[e][0] for e in EXECUTIONS}
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    Path("benchmarks/results/memory_depth.json").write_text(json.dumps(
        {"machine": machine, "peaks_bytes": peaks, "fov_measure_seconds": fov_seconds}, indent=2))
    print("| blocks per level | " + " | ".join(EXECUTIONS) + " |")
    print("|---|" + "---|" * len(EXECUTIONS))
    for i, d in enumerate((1, 2, 3, 4)):
        print(f"| {d} | " + " | ".join(f"{peaks[e][i] / 2**30:.2f} GiB" for e in EXECUTIONS) + " |")
    print()
    print(f"growth 1→4 blocks: plain ×{growth['plain']:.2f}, checkpoint ×{growth['checkpoint']:.2f}, "
          f"reversible ×{growth['reversible']:.3f}; reversible growth = "
          f"{added['reversible'] / added['plain']:.3f} of the plain growth")
    print(f"`revprof measure --patch 160,192,160 --backend simulate`: {fov_seconds:.1f} s wall ({machine})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
