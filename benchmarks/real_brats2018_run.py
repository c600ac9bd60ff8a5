"""The CPU recipe on real BraTS 2018 cases, end to end, timed (issue 25; docs/benchmarks.md).

Builds a training folder and a held-out folder of links to the 16 real 2018 cases in
``../shared/real-samples/brats2018/HGG`` (the held-out cases by name), and, when present, a folder
of links to the one TCGA case of ``../shared/real-samples/brats2021``; then runs, as separate
processes,

    revprof measure --spec SPEC --data TRAIN --val-cases 0 --save-model OUT/net.pt
    revprof predict --model OUT/net.pt --data HELD --out OUT/pred-held
    revprof evaluate --pred OUT/pred-held --ref HELD --json
    (the same two with ``predict --largest-component``, into OUT/pred-held_largest)

(and the same two for the TCGA case), recording for each the wall time, the CPU time (user + system
of the process and its children, from ``resource.getrusage``) and the load average before and
after. Prints one JSON object and writes it to ``OUT/run.json``::

    python benchmarks/real_brats2018_run.py --out /tmp/brats2018-run
    python benchmarks/real_brats2018_run.py --spec studies/brats2018-cpu.json --hold-out AOZ,APR,ARW,ASE
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "real-samples"
HELD_OUT = ("AOZ", "APR", "ARW", "ASE")
"""The held-out 2018 cases (``Brats18_CBICA_<ID>_1``) of the documented run."""


def link_folder(folder: Path, cases: list[Path]) -> Path:
    """A folder of symbolic links to ``cases`` (created empty first)."""
    folder.mkdir(parents=True, exist_ok=False)
    for case in cases:
        os.symlink(case, folder / case.name)
    return folder


def timed(command: list[str], log: Path) -> dict[str, Any]:
    """Run ``command`` in ``log``'s folder (so the preprocessing cache starts empty there) with
    this checkout's revprof, stdout and stderr to ``log``; its wall and CPU seconds and the load."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False, cwd=log.parent,
                              env=env).returncode
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if code != 0:
        sys.exit(f"error: {' '.join(command[3:6])} failed (exit {code}); see {log}")
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load_before": load,
            "load_after": os.getloadavg()[0]}


def scores(evaluation: Path) -> dict[str, Any]:
    """Dice per case and the mean, from ``revprof evaluate --json``'s output."""
    report = json.loads(evaluation.read_text().strip().splitlines()[-1])
    cases = {c["case"]: {**c["dice"], "empty_reference": c["empty_reference"]} for c in report["cases"]}
    return {"cases": cases, "mean": report["mean"]["dice"]}


def main() -> None:
    """Parse the options, run the three commands (five with the TCGA case), print the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "studies" / "brats2018-cpu.json")
    parser.add_argument("--hold-out", default=",".join(HELD_OUT),
                        help="2018 case ids (the part between CBICA_ and _1) kept out of training")
    parser.add_argument("--out", type=Path, default=Path("brats2018-run"))
    args = parser.parse_args()
    hgg = SAMPLES / "brats2018" / "HGG"
    if not hgg.is_dir():
        sys.exit(f"error: real samples not found at {hgg}")
    held_ids = {f"Brats18_CBICA_{part.strip()}_1" for part in args.hold_out.split(",") if part.strip()}
    cases = sorted(p for p in hgg.iterdir() if p.is_dir())
    unknown = held_ids - {c.name for c in cases}
    if unknown:
        sys.exit(f"error: --hold-out names no case here: {', '.join(sorted(unknown))}; cases: "
                 f"{', '.join(c.name for c in cases)}")
    out = args.out.resolve()
    if out.exists():
        sys.exit(f"error: --out {out} exists; give a new folder")
    train = link_folder(out / "train", [c for c in cases if c.name not in held_ids])
    folders = {"held": link_folder(out / "held", [c for c in cases if c.name in held_ids])}
    tcga = SAMPLES / "brats2021" / "BraTS2021_90001"
    if tcga.is_dir():
        folders["tcga"] = link_folder(out / "tcga", [tcga])
    revprof = [sys.executable, "-m", "revprof"]
    record: dict[str, Any] = {"spec": str(args.spec), "train_cases": sorted(p.name for p in train.iterdir()),
                              "cpus": os.cpu_count()}
    record["measure"] = timed([*revprof, "measure", "--spec", str(args.spec.resolve()), "--data", str(train),
                               "--val-cases", "0", "--save-model", str(out / "net.pt"),
                               "--results", str(out / "runs.csv"), "--json"], out / "measure.log")
    for name, folder in folders.items():
        for suffix, extra in (("", []), ("_largest", ["--largest-component"])):
            pred = out / f"pred-{name}{suffix}"
            record[f"predict_{name}{suffix}"] = timed(
                [*revprof, "predict", "--model", str(out / "net.pt"), "--data", str(folder), "--out",
                 str(pred), *extra], out / f"predict-{name}{suffix}.log")
            timed([*revprof, "evaluate", "--pred", str(pred), "--ref", str(folder), "--json"],
                  out / f"evaluate-{name}{suffix}.json")
            record[f"dice_{name}{suffix}"] = scores(out / f"evaluate-{name}{suffix}.json")
    text = json.dumps(record, indent=2)
    (out / "run.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
