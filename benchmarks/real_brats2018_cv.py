"""Four-fold cross-validation of a CPU recipe over the 16 real BraTS 2018 cases (issue 25).

Every case is held out once: fold K trains on the other 12 cases and scores its 4 with
``benchmarks/real_brats2018_run.py`` (``measure``, ``predict`` plain and ``--largest-component``,
``evaluate``; also the TCGA case when present), into ``OUT/foldK``. A fold whose ``run.json``
exists is not run again, so an interrupted cross-validation resumes where it stopped. Then the
per-case Dice, the fold means and the 16-case mean are printed, and with ``--json`` written::

    python benchmarks/real_brats2018_cv.py --spec studies/brats2018-cpu.json --out /tmp/cv
    python benchmarks/real_brats2018_cv.py --collect RUN0 RUN1 RUN2 RUN3 --json cv.json

``--collect`` aggregates run folders (or their ``run.json`` files) made by
``real_brats2018_run.py`` instead of running anything; it refuses a case held out twice. Fold 0
is the split of ``docs/benchmarks.md``, on which the recipe was chosen: its cases are not an
independent estimate, the other folds' are.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

FOLDS: tuple[tuple[str, ...], ...] = (
    ("AOZ", "APR", "ARW", "ASE"),  # the documented split (the recipe was chosen on it)
    ("AMH", "AOP", "APY", "APZ"),
    ("AQO", "AQP", "AQQ", "AQR"),
    ("AQT", "ARZ", "ASA", "ASG"),
)
"""The held-out 2018 cases (``Brats18_CBICA_<ID>_1``) of each fold; together, all 16 once."""

REGIONS = ("wt", "tc", "et")
KINDS = (("plain", "dice_held"), ("largest", "dice_held_largest"))


def run_folds(spec: Path, out: Path, folds: list[int]) -> list[Path]:
    """Run ``real_brats2018_run.py`` for each fold not yet done; the fold folders."""
    done = []
    for index in folds:
        folder = out / f"fold{index}"
        if (folder / "run.json").is_file():
            print(f"fold {index}: done before, {folder / 'run.json'}", file=sys.stderr)
        else:
            if folder.exists():
                sys.exit(f"error: {folder} exists without run.json (an interrupted fold); "
                         "remove it to run the fold again")
            print(f"fold {index}: holding out {', '.join(FOLDS[index])}", file=sys.stderr)
            code = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "real_brats2018_run.py"),
                                   "--spec", str(spec), "--hold-out", ",".join(FOLDS[index]),
                                   "--out", str(folder)], stdout=subprocess.DEVNULL,
                                  check=False).returncode
            if code != 0:
                sys.exit(f"error: fold {index} failed (exit {code}); see the logs in {folder}")
        done.append(folder)
    return done


def _record(path: Path) -> dict[str, Any]:
    file = path / "run.json" if path.is_dir() else path
    if not file.is_file():
        sys.exit(f"error: no run record at {file}")
    return json.loads(file.read_text())


def collect(runs: list[Path]) -> dict[str, Any]:
    """Per-case, per-fold and overall Dice of the runs' held-out cases (plain and largest)."""
    cases: dict[str, dict[str, Any]] = {}
    folds = []
    for path in runs:
        record = _record(path)
        held = sorted(record["dice_held"]["cases"])
        twice = [case for case in held if case in cases]
        if twice:
            sys.exit(f"error: {', '.join(twice)} held out again in {path}; each case once")
        fold: dict[str, Any] = {"run": str(path), "spec": record["spec"], "held_out": held,
                                "train_wall_s": record["measure"]["wall_s"],
                                "train_cpu_s": record["measure"]["cpu_s"]}
        for kind, key in KINDS:
            if key not in record:
                sys.exit(f"error: {path} has no {key} (a run from before --largest-component)")
            fold[kind] = {r: record[key]["mean"][r] for r in REGIONS}
            for case in held:
                cases.setdefault(case, {})[kind] = {r: record[key]["cases"][case][r] for r in REGIONS}
        if "dice_tcga_largest" in record:
            fold["tcga"] = {kind: {r: record[key.replace("held", "tcga")]["mean"][r] for r in REGIONS}
                            for kind, key in KINDS}
        folds.append(fold)
    summary: dict[str, Any] = {"folds": folds, "cases": cases}
    for kind, _ in KINDS:
        values = {r: [cases[c][kind][r] for c in cases] for r in REGIONS}
        summary[kind] = {r: {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0,
                             "min": min(v)} for r, v in values.items()}
    return summary


def show(summary: dict[str, Any]) -> None:
    """Print the per-case table, the folds and the means."""
    def triple(d: dict[str, float]) -> str:
        return " / ".join(f"{d[r]:.3f}" for r in REGIONS)
    print(f"{'case':<22} {'WT / TC / ET':<24} largest component")
    for case in sorted(summary["cases"]):
        row = summary["cases"][case]
        print(f"{case:<22} {triple(row['plain']):<24} {triple(row['largest'])}")
    for index, fold in enumerate(summary["folds"]):
        tcga = fold.get("tcga")
        extra = f"   TCGA WT {tcga['plain']['wt']:.3f} ({tcga['largest']['wt']:.3f})" if tcga else ""
        print(f"fold {index} ({', '.join(c.split('_')[2] for c in fold['held_out'])}): "
              f"{triple(fold['plain'])}   largest {triple(fold['largest'])}{extra}")
    n = len(summary["cases"])
    for kind, _ in KINDS:
        stats = summary[kind]
        print(f"{n}-case mean, {kind}: " + " / ".join(f"{stats[r]['mean']:.3f}" for r in REGIONS)
              + "   (SD " + " / ".join(f"{stats[r]['sd']:.3f}" for r in REGIONS) + ")")


def main() -> None:
    """Parse the options; run or collect; print (and write) the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "studies" / "brats2018-cpu.json")
    parser.add_argument("--out", type=Path, default=Path("brats2018-cv"))
    parser.add_argument("--folds", default="0,1,2,3", help="which folds to run (default all four)")
    parser.add_argument("--collect", type=Path, nargs="+", help="aggregate these run folders instead")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args()
    if args.collect:
        runs = args.collect
    else:
        parts = {part.strip() for part in args.folds.split(",") if part.strip()}
        if not parts or not parts <= {str(index) for index in range(len(FOLDS))}:
            sys.exit(f"error: --folds must be fold numbers 0-3 separated by commas; got {args.folds!r}")
        folds = sorted(int(part) for part in parts)
        runs = run_folds(args.spec.resolve(), args.out.resolve(), folds)
    summary = collect(runs)
    show(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
