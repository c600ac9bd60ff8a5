"""Loading a cached preprocessed case vs loading and preprocessing it from NIfTI.

Usage: ``.venv/bin/python benchmarks/bench_cache.py [--repeats 5] [--shape 240,240,155]``

Writes ``benchmarks/results/cache_load.json``. Both paths read from a warm page cache (each is
run once before timing), so the figure compares decompression + preprocessing against reading
an uncompressed entry.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from revprof.data import PreprocessCache, PreprocessConfig, discover, load_case, preprocess_case, synthesize
from revprof.data.synth import parse_shape

RESULTS = Path(__file__).resolve().parent / "results" / "cache_load.json"


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up: page cache, imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shape", default="240,240,155")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    shape = parse_shape(args.shape)
    config = PreprocessConfig()  # paper: crop to brain, 160x192x160, z-score

    with tempfile.TemporaryDirectory() as tmp:
        synthesize(Path(tmp) / "data", 1, shape, "brats2021", seed=0)
        (case,) = discover(Path(tmp) / "data").cases
        cache = PreprocessCache(Path(tmp) / "cache", config)
        cache.get(case)
        entry = cache.path_for(case)

        nifti = _time(lambda: preprocess_case(load_case(case), config), args.repeats)
        cached = _time(lambda: cache.load(case), args.repeats)
        hit = cache.load(case)
        assert hit is not None
        fresh = preprocess_case(load_case(case), config)
        assert np.array_equal(hit.image, fresh.image) and np.array_equal(hit.regions, fresh.regions)
        entry_mb = entry.stat().st_size / 1e6
        nifti_mb = sum(p.stat().st_size for p in case.files) / 1e6

    nifti_s, cached_s = statistics.median(nifti), statistics.median(cached)
    result = {
        "benchmark": "cache_load",
        "shape": list(shape),
        "preprocess": config.as_dict(),
        "repeats": args.repeats,
        "nifti_load_preprocess_s": {"median": nifti_s, "all": nifti},
        "cache_load_s": {"median": cached_s, "all": cached},
        "speedup": nifti_s / cached_s,
        "nifti_mb": round(nifti_mb, 2),
        "cache_entry_mb": round(entry_mb, 2),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
        },
        "command": "python benchmarks/bench_cache.py" + (
            f" --repeats {args.repeats}" if args.repeats != 5 else ""),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"NIfTI load + preprocess: median {nifti_s * 1000:.0f} ms ({nifti_mb:.1f} MB gzip)")
    print(f"cache load:              median {cached_s * 1000:.0f} ms ({entry_mb:.1f} MB entry)")
    print(f"speedup: {nifti_s / cached_s:.1f}x (target >= 10x); wrote {args.out}")


if __name__ == "__main__":
    main()
