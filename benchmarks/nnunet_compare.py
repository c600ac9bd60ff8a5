"""revprof's exact peak next to the estimates of nnU-Net v2's planner and MONAI Auto3DSeg.

Three tables for docs/benchmarks.md (markdown on stdout, figures in
benchmarks/results/nnunet_compare.json):

1. every preset at 128³, batch 1, fp32 (the paper's recipe: Adam, soft Dice; ``simulate``);
2. nnU-Net: for each ``nnunet:*`` preset and a range of patches, nnU-Net's own estimate next to
   revprof's peak for the same network (topology derived for that patch as nnU-Net does) trained
   with the ``nnunet`` recipe, the step nnU-Net runs (SGD + Nesterov, Dice + cross-entropy per
   region as for BraTS, fp16 autocast with a GradScaler, clipping, batch 2 — the planner's
   reference batch); then the patch and batch each planner would choose for a BraTS-like dataset,
   what that really needs (allocated, reserved, device need) and nnU-Net's published nvidia-smi
   figures for its presets;
3. MONAI SegResNetDS with the ROI and batch Auto3DSeg's segresnet template picks for a 16 GB card.

nnU-Net's estimate, as its planner computes it: the network's ``compute_conv_feature_map_size(patch)``
(dynamic-network-architectures) is compared with a reference value that stands for a reference
batch on a reference GPU size, so the estimate in the planner's "GB" for batch ``b`` is
``ref_GB * feature_maps / ref_value * b / ref_batch``. The constants (nnU-Net v2):

- ``ExperimentPlanner`` (PlainConvUNet): reference value 560,000,000 for 8 GB at batch 2;
- ``nnUNetPlannerResEncM``: 680,000,000 for 8 GB at batch 2;
- ``nnUNetPlannerResEncL``: 2,100,000,000 for 24 GB at batch 2;
- minimum batch 2; the default planner caps the batch at 5 % of the dataset's voxels (ResEnc: no cap).

    python benchmarks/nnunet_compare.py            # ~15 min on a loaded 2-core CPU
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from revprof.memory import measure_memory
from revprof.memory.device import device_need
from revprof.nn.factory import model_spec
from revprof.nn.presets import PRESETS, nnunet_topology
from revprof.recipe import NNUNET

GiB = 2**30
PATCHES = ((64, 64, 64), (96, 96, 96), (128, 128, 128), (128, 160, 112), (160, 160, 160))
MEDIAN_SHAPE = (138, 170, 138)
"""A BraTS-like dataset at 1 mm after nnU-Net's crop to the brain: the median shape in a public
nnU-Net v2 plans file of a 4-channel brain-tumour dataset (``Dataset033_Tumor``)."""


@dataclass(frozen=True)
class Planner:
    name: str
    preset: str
    reference_value: float
    reference_gb: float
    target_gb: float
    reference_batch: int = 2
    min_batch: int = 2


PLANNERS = (
    Planner("ExperimentPlanner (default)", "nnunet:plainconvunet", 560e6, 8, 8),
    Planner("nnUNetPlannerResEncM", "nnunet:resenc-m", 680e6, 8, 8),
    Planner("nnUNetPlannerResEncL", "nnunet:resenc-l", 2100e6, 24, 24),
)

PUBLISHED_VRAM_GB = {"ExperimentPlanner (default)": 7.70, "nnUNetPlannerResEncM": 9.10,
                     "nnUNetPlannerResEncL": 22.70}
"""nnU-Net's ResEnc presets table (MIC-DKFZ/nnUNet ``documentation/resenc_presets.md``): "GPU VRAM
used during training, as reported by nvidia-smi", on an A100 PCIe 40GB, for nnU-Net (org.), ResEnc M
and ResEnc L (one figure per method across its six datasets)."""


def feature_maps(preset: str, patch: tuple[int, int, int]) -> int:
    """nnU-Net's VRAM proxy: the network's conv feature-map size for one sample."""
    from revprof.nn.factory import load_factory

    with torch.device("meta"):
        net = load_factory(preset)(patch=list(patch))
    return int(net.compute_conv_feature_map_size(list(patch)))


def nnunet_gb(planner: Planner, maps: int, batch: int) -> float:
    return planner.reference_gb * maps / planner.reference_value * batch / planner.reference_batch


CACHE = Path("benchmarks/results/nnunet_compare.partial.json")


def cached(key: str, compute) -> dict:  # an interrupted run resumes where it stopped
    done = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    if key not in done:
        done[key] = compute()
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_text(json.dumps(done))
    return done[key]


def revprof_peak(preset: str, patch: tuple[int, int, int], batch: int) -> dict[str, float]:
    """revprof's exact figures for ``preset`` at ``patch`` trained with the ``nnunet`` recipe at
    ``batch``: peak allocated, predicted reserved, and the device need with the datacenter context
    allowance (an A100)."""
    def compute() -> dict[str, float]:
        spec = model_spec(preset, {"patch": list(patch)})
        started = time.perf_counter()
        report = measure_memory(spec, patch, NNUNET.with_overrides({"batch": batch}),
                                backend="simulate")
        reserved = int(report.predicted_reserved_bytes or 0)
        return {"peak_bytes": report.peak_bytes, "params": report.params,
                "seconds": time.perf_counter() - started,
                "reserved_bytes": reserved,
                "device_need_bytes": device_need(reserved, device_class="datacenter").total,
                "optimizer_state_bytes": report.breakdown["optimizer_state"]}

    return cached(f"nnunet-recipe {preset} {patch} {batch}", compute)


def plan_like_nnunet(planner: Planner) -> tuple[tuple[int, int, int], int, float]:
    """The patch and batch ``planner`` chooses for :data:`MEDIAN_SHAPE` at 1 mm (its shrink loop:
    the axis largest relative to the median shape loses one divisibility step until the estimate
    fits the reference; then the batch fills the head-room)."""
    reference = planner.reference_value * planner.target_gb / planner.reference_gb
    patch = list(nnunet_topology(MEDIAN_SHAPE).patch)  # 256³ clipped to the median shape, padded
    while True:
        top = nnunet_topology(patch)
        patch = list(top.patch)
        maps = feature_maps(planner.preset, tuple(patch))
        if maps <= reference:
            break
        axis = int(np.argsort([p / m for p, m in zip(patch, MEDIAN_SHAPE)])[-1])
        smaller = list(patch)
        smaller[axis] -= 2 ** top.pools[axis]
        step = 2 ** nnunet_topology(smaller).pools[axis]
        patch[axis] -= step
    batch = max(planner.min_batch, round(reference / maps * planner.reference_batch))
    return (patch[0], patch[1], patch[2]), batch, nnunet_gb(planner, maps, batch)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    results: dict[str, object] = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
                                             f"torch {torch.__version__}"}
    presets = {}
    for name in PRESETS:
        log(f"preset {name} at 128³")

        def preset_at_128(name: str = name) -> dict:
            started = time.perf_counter()
            report = measure_memory(model=name, patch=128, backend="simulate")
            return {"peak_bytes": report.peak_bytes, "params": report.params,
                    "outputs": len(report.spec.outputs), "peak_phase": report.peak_phase,
                    "seconds": time.perf_counter() - started}

        presets[name] = cached(f"preset {name}", preset_at_128)
    results["presets_128"] = presets

    comparison = []
    for planner in PLANNERS:
        for patch in PATCHES:
            log(f"{planner.preset} {patch}")
            maps = feature_maps(planner.preset, patch)
            ours = revprof_peak(planner.preset, patch, 2)
            comparison.append({"planner": planner.name, "preset": planner.preset, "patch": patch,
                               "feature_maps": maps, "nnunet_gb": nnunet_gb(planner, maps, 2), **ours})
    results["recipe"] = NNUNET.to_dict()
    results["comparison_batch2_fp16"] = comparison

    plans = []
    for planner in PLANNERS:
        patch, batch, estimate = plan_like_nnunet(planner)
        log(f"{planner.name} plans {patch} batch {batch}")
        ours = revprof_peak(planner.preset, patch, batch)
        plans.append({"planner": planner.name, "preset": planner.preset, "target_gb": planner.target_gb,
                      "patch": patch, "batch": batch, "nnunet_gb": estimate,
                      "published_nvidia_smi_gb": PUBLISHED_VRAM_GB[planner.name], **ours})
    results["nnunet_plans"] = plans

    # Auto3DSeg segresnet template, 16 GB card: roi_size_default 224x224x144, batch_size_default 1,
    # init_filters 32, gpu_factor = max(1, 16/16) = 1 (no scaling); 5 levels, SegResNetDS with
    # deep supervision (dsdepth 4), AMP on.
    log("Auto3DSeg SegResNetDS 224x224x144")
    auto3dseg_kwargs = {"spatial_dims": 3, "in_channels": 4, "out_channels": 3, "init_filters": 32,
                        "blocks_down": [1, 2, 2, 4, 4], "norm": "instance", "dsdepth": 4}
    started = time.perf_counter()
    from revprof.recipe import PAPER

    amp = PAPER.with_overrides({"precision": "fp16"})  # Auto3DSeg's step: Adam-family, AMP
    report = measure_memory(model_spec("monai.networks.nets:SegResNetDS", auto3dseg_kwargs, patch_multiple=16),
                            (224, 224, 144), amp, backend="simulate")
    results["auto3dseg_segresnet_16gb"] = {
        "kwargs": auto3dseg_kwargs, "patch": [224, 224, 144], "batch": 1, "precision": "fp16",
        "card_gib": 16, "peak_bytes": report.peak_bytes, "params": report.params,
        "outputs": len(report.spec.outputs), "seconds": time.perf_counter() - started}

    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    Path("benchmarks/results/nnunet_compare.json").write_text(json.dumps(results, indent=2))
    CACHE.unlink()
    print(render(results))
    return 0


def render(results: dict) -> str:
    lines = ["| preset | parameters | outputs | peak at 128³ (fp32, batch 1) | peak in | simulate time |",
             "|---|---:|---:|---:|---|---:|"]
    for name, r in results["presets_128"].items():
        lines.append(f"| `{name}` | {r['params']:,} | {r['outputs']} | {r['peak_bytes'] / GiB:.2f} GiB "
                     f"({r['peak_bytes']:,} B) | {r['peak_phase']} | {r['seconds']:.0f} s |")
    lines += ["", "| planner | patch | nnU-Net feature maps | nnU-Net estimate | revprof exact | revprof / nnU-Net |",
              "|---|---|---:|---:|---:|---:|"]
    for r in results["comparison_batch2_fp16"]:
        ours = r["peak_bytes"] / GiB
        lines.append(f"| {r['planner']} | {'x'.join(map(str, r['patch']))} | {r['feature_maps']:,} | "
                     f"{r['nnunet_gb']:.2f} GB | {ours:.2f} GiB | {ours / r['nnunet_gb']:.2f} |")
    lines += ["", "| planner (target) | planned patch | batch | nnU-Net estimate | revprof allocated | "
                  "reserved | device need (A100) | published nvidia-smi (A100) |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results["nnunet_plans"]:
        lines.append(f"| {r['planner']} ({r['target_gb']:g} GB) | {'x'.join(map(str, r['patch']))} | "
                     f"{r['batch']} | {r['nnunet_gb']:.2f} GB | {r['peak_bytes'] / GiB:.2f} GiB | "
                     f"{r['reserved_bytes'] / GiB:.2f} GiB | {r['device_need_bytes'] / GiB:.2f} GiB | "
                     f"{r['published_nvidia_smi_gb']:.2f} GB |")
    a = results["auto3dseg_segresnet_16gb"]
    lines += ["", f"Auto3DSeg segresnet, 16 GB card: SegResNetDS init_filters 32, 5 levels, "
                  f"ROI 224x224x144, batch 1, AMP: revprof exact "
                  f"{a['peak_bytes'] / GiB:.2f} GiB ({a['peak_bytes']:,} B, {a['params']:,} parameters, "
                  f"{a['outputs']} outputs) = {100 * a['peak_bytes'] / GiB / 16:.0f}% of the card."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
