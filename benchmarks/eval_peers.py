"""revprof's scores next to the official BraTS tool, MedPy and MONAI on the real MET samples.

Usage (from the repository root)::

    python benchmarks/eval_peers.py [--samples ../shared/real-samples/met-eval] [--out FILE.md]

Prints a Markdown table (and writes it to ``--out``): per case and region, global Dice, the
lesion-wise Dice and HD95 in mm and in voxels, from

- revprof's default (``revprof evaluate``: HD95 in mm, lesion-wise scores with the official rules),
- revprof ``--official`` (global HD95 in voxels, the official tool's per-lesion spacing),
- the official tool (``brats-evaluation``): its own published output for these pairs,
  ``official/sample_mets_metrics.json`` (data: the tool itself is not run or needed),
- MedPy (``medpy.metric.binary.dc`` / ``hd95`` with and without ``voxelspacing``),
- MONAI (``compute_dice`` / ``compute_hausdorff_distance(percentile=95)`` with and without
  ``spacing``).

MedPy and MONAI are not dependencies of revprof. To make them importable without touching the
environment's torch::

    pip install --no-deps --target /tmp/peers medpy==0.5.2 simpleitk monai==1.6.1
    PYTHONPATH=/tmp/peers python benchmarks/eval_peers.py --out benchmarks/results/eval_peers.md

A peer that is not importable is said so, and its columns are recomputed from its published
definition with revprof's primitives (MedPy's HD95 is revprof's; MONAI's is the larger of the two
directed 95th percentiles of revprof's surface distances), marked ``*`` in the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from revprof.data.conventions import REGIONS, get_convention  # noqa: E402
from revprof.evaluation.dice import dice_score  # noqa: E402
from revprof.evaluation.evaluate import evaluate, scoring_options  # noqa: E402
from revprof.evaluation.hausdorff import hd95, surface_distances  # noqa: E402
from revprof.evaluation.io import load_segmentation  # noqa: E402
from revprof.evaluation.pairing import pair_files  # noqa: E402


def _peer_medpy():
    try:
        from medpy.metric import binary
    except ImportError as error:
        print(f"MedPy not importable ({error}); its figures are recomputed with revprof's hd95 "
              "(the same definition)", file=sys.stderr)
        return None
    return binary


def _peer_monai():
    try:
        import torch
        from monai.metrics import compute_dice, compute_hausdorff_distance
    except ImportError as error:
        print(f"MONAI not importable ({error}); its HD95 is recomputed as the larger of the two "
              "directed 95th percentiles of revprof's surface distances", file=sys.stderr)
        return None
    return torch, compute_dice, compute_hausdorff_distance


def _medpy(binary, p: np.ndarray, r: np.ndarray, spacing) -> tuple[float, float, float]:
    if binary is None:
        return dice_score(p, r), hd95(p, r, spacing), hd95(p, r, None)
    return float(binary.dc(p, r)), float(binary.hd95(p, r, voxelspacing=spacing)), float(binary.hd95(p, r))


def _monai_definition(p: np.ndarray, r: np.ndarray, spacing) -> float:
    forward, backward = surface_distances(p, r, spacing)
    return float(max(np.percentile(forward, 95), np.percentile(backward, 95)))


def _monai(peer, p: np.ndarray, r: np.ndarray, spacing) -> tuple[float, float, float]:
    if peer is None:
        return dice_score(p, r), _monai_definition(p, r, spacing), _monai_definition(p, r, None)
    torch, compute_dice, compute_hd = peer
    pred = torch.from_numpy(np.ascontiguousarray(p))[None, None]
    ref = torch.from_numpy(np.ascontiguousarray(r))[None, None]
    dice = float(compute_dice(pred, ref, include_background=True)[0, 0])
    mm = float(compute_hd(pred, ref, include_background=True, percentile=95, spacing=list(spacing))[0, 0])
    vox = float(compute_hd(pred, ref, include_background=True, percentile=95)[0, 0])
    return dice, mm, vox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=ROOT.parent / "shared" / "real-samples" / "met-eval")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    samples: Path = args.samples
    golden = {m["subject_name"].removesuffix("-seg.nii.gz"): m
              for m in json.loads((samples / "official" / "sample_mets_metrics.json").read_text())["metrics"]}
    medpy, monai = _peer_medpy(), _peer_monai()
    default = {c.case: c for c in evaluate(samples / "pred", samples / "ref").cases}
    official = {c.case: c for c in evaluate(samples / "pred", samples / "ref",
                                            options=scoring_options(official=True)).cases}
    convention = get_convention("brats2023")
    star_m, star_o = ("" if medpy else "*"), ("" if monai else "*")
    header = ("| case | region | Dice revprof | Dice official | Dice MedPy" + star_m + " | Dice MONAI" + star_o
              + " | LW Dice revprof | LW Dice revprof --official | LW Dice official | TP/FP/FN revprof"
              " | TP/FP/FN official | HD95 mm revprof | HD95 mm MedPy" + star_m + " | HD95 mm MONAI" + star_o
              + " | HD95 vox revprof --official | HD95 vox official | HD95 vox MedPy" + star_m
              + " | HD95 vox MONAI" + star_o + " |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for pair in pair_files(samples / "pred", samples / "ref").pairs:
        pred, ref = load_segmentation(pair.pred), load_segmentation(pair.ref)
        g = golden[pair.case]
        for region in REGIONS:
            values = convention.regions[region]
            p, r = np.isin(pred.labels, values), np.isin(ref.labels, values)
            want = g[region]
            total = want["tp"] + want["fp"] + want["fn"]
            official_lw = want["sq_dsc"] * want["tp"] / total if total else 1.0
            md, mm_mm, mm_vox = _medpy(medpy, p, r, ref.spacing)
            od, om_mm, om_vox = _monai(monai, p, r, ref.spacing)
            d, o = default[pair.case], official[pair.case]
            les, les_o = d.lesions[region], o.lesions[region]
            lines.append(
                f"| {pair.case} | {region.upper()} | {d.dice[region]:.4f} | {want['global_bin_dsc']:.4f} "
                f"| {md:.4f} | {od:.4f} | {les.dice:.4f} | {les_o.dice:.4f} | {official_lw:.4f} "
                f"| {les.tp}/{les.fp}/{les.fn} | {want['tp']}/{want['fp']}/{want['fn']} "
                f"| {d.hd95[region]:.3f} | {mm_mm:.3f} | {om_mm:.3f} "
                f"| {o.hd95[region]:.3f} | {want['global_bin_hd95']:.3f} | {mm_vox:.3f} | {om_vox:.3f} |"
            )
    notes = [
        "",
        "Official: the tool's own published output for these pairs (data; the tool is not run). "
        "Its lesion-wise Dice is recomputed from its per-case figures as sq_dsc·TP/(TP+FP+FN), the "
        "penalised mean over all lesions.",
    ]
    if not medpy:
        notes.append("`*` MedPy not importable here: recomputed with revprof's hd95 (MedPy's definition).")
    if not monai:
        notes.append("`*` MONAI not importable here: recomputed as max(directed 95th percentiles).")
    text = "\n".join(lines + notes) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
