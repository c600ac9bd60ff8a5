"""Loading the 16 real BraTS 2018 cases: first preprocessing into an empty cache, then a cached
reload, as training does (``PreprocessCache.get`` per case).

Usage: ``.venv/bin/python benchmarks/real_brats2018_cache.py [--data DIR] [--spacing 1,1,1]``
(default data: ``../shared/real-samples/brats2018``). Prints one JSON line per spacing: seconds
for the first pass (NIfTI → preprocessed, written to the cache) and for the reload (cache hits),
the cache's size on disk, and the counts of misses and hits.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from revprof.data import PreprocessCache, PreprocessConfig, discover
from revprof.data.resample import parse_spacing

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "brats2018"


def _pass(cache: PreprocessCache, cases: list) -> float:
    start = time.perf_counter()
    for case in cases:
        cache.get(case)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--spacing", action="append", default=None,
                        help="target spacing (repeatable; default 1,1,1 and 2,2,2)")
    args = parser.parse_args()
    cases = discover(args.data).cases
    for text in args.spacing or ["1,1,1", "2,2,2"]:
        config = PreprocessConfig(size=None, spacing=parse_spacing(text))  # training's crop here
        with tempfile.TemporaryDirectory() as tmp:
            first = PreprocessCache(Path(tmp), config)
            cold = _pass(first, cases)
            again = PreprocessCache(Path(tmp), config)
            warm = _pass(again, cases)
            size = sum(p.stat().st_size for p in Path(tmp).glob("*.npz"))
        print(json.dumps({"cases": len(cases), "spacing": text, "first_s": round(cold, 2),
                          "cached_s": round(warm, 2), "speedup": round(cold / warm, 1),
                          "cache_mib": round(size / 2**20, 1), "misses": first.misses,
                          "hits": again.hits}))


if __name__ == "__main__":
    main()
