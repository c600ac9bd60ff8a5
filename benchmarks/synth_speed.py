"""Seconds to write one synthetic BraTS case (phantom + four modalities + labels, gzip NIfTI).

Usage: ``.venv/bin/python benchmarks/synth_speed.py [--cases 2] [--shape 64,64,64]``

Writes ``benchmarks/results/synth_speed.json``. This replaced a wall-clock assertion in the test
suite ("under 1 s per 64³ case"): timings belong here, where the machine is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from revprof.data import synthesize
from revprof.data.synth import parse_shape

RESULTS = Path(__file__).resolve().parent / "results" / "synth_speed.json"
TARGET_S = 1.0  # per 64³ case: the demo and the tests write a handful of these


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--shape", action="append", default=None,
                        help="case shape X,Y,Z (repeatable); default 64,64,64 and 240,240,155")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    shapes = [parse_shape(s) for s in (args.shape or ["64,64,64", "240,240,155"])]

    rows = []
    for shape in shapes:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            synthesize(Path(tmp), args.cases, shape, "brats2021", seed=0)
            per_case = (time.perf_counter() - start) / args.cases
        rows.append({"shape": list(shape), "cases": args.cases, "seconds_per_case": per_case})
        print(f"{'x'.join(map(str, shape))}: {per_case:.3f} s per case ({args.cases} cases)")
    small = next((r for r in rows if r["shape"] == [64, 64, 64]), None)
    if small is not None:
        verdict = "meets" if small["seconds_per_case"] < TARGET_S else "misses"
        print(f"64³ {verdict} the {TARGET_S:.0f} s per case target")
    result = {
        "benchmark": "synth_speed",
        "rows": rows,
        "target_seconds_per_64_case": TARGET_S,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "load_average": list(os.getloadavg())},
        "command": "python benchmarks/synth_speed.py",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
