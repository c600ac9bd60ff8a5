"""Any network (issue 14): MONAI and nnU-Net presets, factories and modules measured exactly.

Each preset is built and measured on a tiny patch, where ``simulate`` (fake tensors) must equal
``cpu`` (real tensors) to the byte; one network is counted independently by PyTorch's own
``MemTracker`` under ``FakeTensorMode``; every way a user factory can fail is one line through the
CLI. The extras (``revprof[monai]``, ``revprof[nnunet]``) are installed by ``make test``.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from revprof import RevprofError
from revprof.cli.app import app
from revprof.memory import measure_memory
from revprof.memory.planner import Criterion, largest_batch, largest_patch
from revprof.nn.factory import model_spec
from revprof.nn.presets import PRESETS, nnunet_topology
from revprof.recipe import NNUNET, PAPER
from conftest import require
from memtracker import memtracker_peak

ROOT = Path(__file__).resolve().parents[1]


def _need(package: str) -> None:
    try:
        __import__(package)
    except ImportError:
        require(False, f"{package} is not installed (make test installs revprof[monai] and revprof[nnunet])")


# Tiny configurations of every preset: a patch where the lowest stage keeps more than one voxel
# (instance and batch norm need it in training), the preset's own factory and defaults otherwise.
TINY = {
    "monai:segresnet": ({}, 16),
    "monai:dynunet": ({"kernel_size": [3, 3, 3], "strides": [1, 2, 2], "upsample_kernel_size": [2, 2]}, 16),
    "monai:unet": ({"channels": [8, 16, 32], "strides": [2, 2]}, 16),
    "nnunet:plainconvunet": ({"patch": [16, 16, 16]}, 16),
    "nnunet:resenc-m": ({"patch": [16, 16, 16]}, 16),
    "nnunet:resenc-l": ({"patch": [16, 16, 16], "num_classes": 4}, 16),
}


def test_every_preset_has_a_tiny_case():
    assert set(TINY) == set(PRESETS)


# The paper's step (sigmoid regions, soft Dice, Adam) and nnU-Net's (softmax classes, Dice + CE,
# SGD, clipping, batch 2) as a classes-trained network runs it. In fp32: under fp16 autocast,
# PyTorch's fake kernel of an instance norm (most presets) keeps its saved statistics in float16
# where the CPU kernel keeps float32 for float32 weights (2 KiB in 22 MB for plainconvunet), a
# gap between fake and real tensors that docs/memory-model.md lists; revprof's own networks are
# exact under fp16 (tests/test_recipe.py).
RECIPES = {"paper": PAPER,
           "nnunet-classes": NNUNET.with_overrides({"targets": "classes", "precision": "fp32"})}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY), ids=lambda n: n.replace(":", "-"))
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_preset_simulate_equals_cpu_to_the_byte(name: str, recipe: str):
    _need(PRESETS[name].package)
    kwargs, patch = TINY[name]
    spec = model_spec(name, kwargs)
    simulated = measure_memory(spec, patch, RECIPES[recipe], backend="simulate")
    counted = measure_memory(spec, patch, RECIPES[recipe], backend="cpu")
    assert simulated.peak_bytes == counted.peak_bytes
    assert simulated.breakdown == counted.breakdown
    assert simulated.params == counted.params > 0
    assert simulated.spec.in_channels == 4
    batch = RECIPES[recipe].batch
    assert simulated.spec.outputs[0] == (batch, simulated.spec.out_channels, patch, patch, patch)
    assert simulated.breakdown["parameters"] >= 4 * simulated.params  # fp32, rounded up per tensor
    if name.startswith("nnunet"):  # nnU-Net trains with deep supervision: one output per stage but the lowest
        assert len(simulated.spec.outputs) == nnunet_topology((patch,) * 3).stages - 1


def test_nnunet_topology_follows_its_planner_rule():
    # 128 halves five times to 4; 112 only four times (7 < 2*4); the patch is padded to the multiple
    top = nnunet_topology((128, 160, 112))
    assert top.pools == (5, 5, 4)
    assert top.strides[0] == (1, 1, 1) and top.strides[-1] == (2, 2, 1)
    assert top.stages == 6 and top.patch == (128, 160, 112)
    assert nnunet_topology((100, 100, 100)).patch == (112, 112, 112)


def test_deep_supervision_weights_are_nnunets():
    assert PAPER.ds_weights(1) == [1.0]
    weights = PAPER.ds_weights(5)  # 1, 1/2, 1/4, 1/8 and the lowest 0, normalised
    assert weights == pytest.approx([1 / 1.875, 0.5 / 1.875, 0.25 / 1.875, 0.125 / 1.875, 0.0])
    given = PAPER.with_overrides({"deep_supervision": [1.0, 0.5]})
    assert given.ds_weights(2) == [1.0, 0.5]
    with pytest.raises(RevprofError, match="has 2 weights but the network returns 3 outputs"):
        given.ds_weights(3)


@pytest.mark.slow
def test_memtracker_counts_the_same_peak_independently(monkeypatch):
    _need("dynamic_network_architectures")
    patch = (64, 64, 64)
    spec = model_spec("nnunet:plainconvunet", {"patch": list(patch)}).checked(patch)
    ours = measure_memory(spec, patch, backend="simulate")
    theirs, counters = memtracker_peak(spec, patch, PAPER, monkeypatch)
    assert ours.peak_bytes > 100 * 2**20
    # the counters exist from the first optimizer step on, so at a peak in step 2 MemTracker has them too
    expected = ours.peak_bytes + (counters if ours.peak_step == 1 else 0)
    assert theirs == expected, (theirs, ours.peak_bytes, counters, ours.peak_phase, ours.peak_step)


def test_a_module_instance_is_measured_on_a_copy():
    net = torch.nn.Sequential(torch.nn.Conv3d(2, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(8, 3, 1))
    before = copy.deepcopy(net.state_dict())
    simulated = measure_memory(model=net, patch=8, backend="simulate")
    counted = measure_memory(model=net, patch=8, backend="cpu")
    assert simulated.peak_bytes == counted.peak_bytes > 0
    assert simulated.spec.in_channels == 2 and simulated.spec.out_channels == 3
    for key, value in net.state_dict().items():  # Adam stepped the copy, not the user's weights
        assert torch.equal(value, before[key])


def test_a_zero_argument_factory_is_measured():
    classes = PAPER.with_overrides({"loss": "dice_ce", "targets": "classes"})
    report = measure_memory(model=lambda: torch.nn.Conv3d(4, 3, 3, padding=1), patch=(8, 8, 16),
                            recipe=classes, backend="simulate")
    assert report.spec.outputs == ((1, 3, 8, 8, 16),)
    assert report.recipe == classes and report.to_dict()["recipe"]["targets"] == "classes"
    from revprof.memory import MemoryReport

    again = MemoryReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.spec == report.spec and again.peak_bytes == report.peak_bytes


class _TensorsInLists(torch.nn.Module):
    """Tensors kept in a list and a dict attribute, as MONAI's DynUNet keeps ``heads``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(2, 3, 3, padding=1)
        self.heads = [torch.rand(1)] * 2
        self.extra = {"scale": (torch.ones(1),)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.extra["scale"][0]


def test_tensors_inside_list_and_dict_attributes_are_made_fake():
    # built on the meta device, the factory's list of tensors must not reach the fake mode as meta
    simulated = measure_memory(model=_TensorsInLists, patch=8, backend="simulate")
    counted = measure_memory(model=_TensorsInLists, patch=8, backend="cpu")
    assert simulated.peak_bytes == counted.peak_bytes > 0


def test_spec_and_model_together_is_an_error():
    from revprof import ArchSpec

    with pytest.raises(RevprofError, match="not both"):
        measure_memory(ArchSpec.paper_revunet(), 16, model=lambda: torch.nn.Conv3d(4, 3, 1))


def test_largest_batch_and_patch_for_a_factory():
    spec = model_spec("torch.nn:Conv3d", {"in_channels": 4, "out_channels": 3, "kernel_size": 3,
                                          "padding": 1}, patch_multiple=8)
    allocated = Criterion("allocated")
    peak = {b: measure_memory(spec, 16, PAPER.with_overrides({"batch": b}), backend="simulate").peak_bytes
            for b in (3, 4)}
    plan = largest_batch(spec, (16, 16, 16), peak[3], criterion=allocated)
    assert plan.question == "largest batch: 3" and plan.candidates[0].peak_bytes == peak[3] < peak[4]
    assert [c.peak_bytes > peak[3] for c in plan.checked] == [False, False, True, False]  # 1, 2, 4, 3
    budget = measure_memory(spec, (24, 16, 16), backend="simulate").peak_bytes
    best = largest_patch(spec, budget, max_patch=(32, 32, 32), criterion=allocated).candidates[0]
    assert best.peak_bytes <= budget and all(s % 8 == 0 for s in best.patch)
    # the default criterion, what the card needs (reserved + context + workspace)
    three = largest_batch(spec, (16, 16, 16), 2**40, max_batch=3).candidates[0]
    device = largest_batch(spec, (16, 16, 16), three.device_bytes)
    assert int(device.question.split(": ")[1]) >= 3
    assert device.candidates[0].device_bytes <= three.device_bytes
    assert device.rejected and all(c.device_bytes > three.device_bytes for c in device.rejected)


runner = CliRunner()


def _cli_error(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture
def user_factories(tmp_path: Path, monkeypatch) -> str:
    """A user's module of factories, importable as ``userfactories``."""
    (tmp_path / "userfactories.py").write_text(textwrap.dedent("""
        import torch

        def ok():
            return torch.nn.Conv3d(4, 3, 3, padding=1)

        def raises():
            raise ValueError("widths must be positive")

        def shrinks():
            return torch.nn.Conv3d(4, 3, 3)          # no padding: 16 -> 14

        def as_dict():
            class Net(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = torch.nn.Conv3d(4, 3, 1)
                def forward(self, x):
                    return {"out": self.conv(x)}
            return Net()

        NOT_CALLABLE = 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "userfactories"


@pytest.mark.parametrize("factory, kwargs, message", [
    pytest.param("nosuchpackage.nets:Net", None, "cannot import 'nosuchpackage.nets'", id="missing-module"),
    pytest.param("{m}:missing", None, "has no attribute 'missing'", id="missing-attribute"),
    pytest.param("{m}:NOT_CALLABLE", None, "not a callable factory", id="not-callable"),
    pytest.param("{m}:raises", None, "the factory raised ValueError: widths must be positive", id="raises"),
    pytest.param("{m}:ok", '{"width": 3}', "the factory raised TypeError", id="bad-kwargs"),
    pytest.param("{m}:ok", "{width: 3}", "--model-kwargs must be a JSON object", id="kwargs-not-json"),
    pytest.param("{m}:shrinks", None, "has shape 1x3x14x14x14; expected 1xCx16x16x16", id="wrong-shape"),
    pytest.param("{m}:as_dict", None, "must return a tensor or a list/tuple of tensors; got dict",
                 id="wrong-type"),
    pytest.param("not a factory", None, "must be PACKAGE.MODULE:FACTORY", id="malformed"),
])
def test_factory_errors_are_one_line(user_factories: str, factory: str, kwargs: str | None, message: str):
    args = ["measure", "--model", factory.format(m=user_factories), "--patch", "16", "--backend", "simulate"]
    if kwargs is not None:
        args += ["--model-kwargs", kwargs]
    line = _cli_error(*args)
    assert message in line
    if "PACKAGE" not in message and "JSON" not in message:
        assert factory.format(m=user_factories) in line  # names the factory


def test_model_with_architecture_options_or_a_training_run_is_an_error(user_factories: str):
    assert "drop the architecture options (--levels)" in _cli_error(
        "measure", "--model", "torch.nn:Identity", "--levels", "3")
    assert "with --model, measure memory only" in _cli_error(
        "measure", "--model", f"{user_factories}:ok", "--steps", "2")
    assert "no trainable parameters" in _cli_error(
        "measure", "--model", "torch.nn:Identity", "--in-channels", "4", "--patch", "8")


def test_cli_measure_plan_and_model_with_a_factory(user_factories: str):
    result = runner.invoke(app, ["measure", "--model", f"{user_factories}:ok", "--patch", "8",
                                 "--backend", "simulate", "--json", "--loss", "dice_ce",
                                 "--targets", "classes"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["spec"]["factory"] == f"{user_factories}:ok" and data["recipe"]["loss"] == "dice_ce"
    classes = PAPER.with_overrides({"loss": "dice_ce", "targets": "classes"})
    assert data["peak_bytes"] == measure_memory(model=f"{user_factories}:ok", patch=8, backend="simulate",
                                                recipe=classes).peak_bytes
    result = runner.invoke(app, ["plan", "--model", f"{user_factories}:ok", "--budget", "64MiB",
                                 "--patch", "8", "--criterion", "allocated", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["question"].startswith("largest batch: ")
    result = runner.invoke(app, ["model", "--model", f"{user_factories}:ok", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["kind"] == "model" and summary["parameters"] == 4 * 3 * 27 + 3


@pytest.mark.slow
def test_preset_model_table_and_no_traceback_in_a_real_process():
    _need("dynamic_network_architectures")
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "revprof", "model", "--model", "nnunet:resenc-m"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ResidualEncoder" in done.stdout and "total" in done.stdout
    done = subprocess.run([sys.executable, "-m", "revprof", "measure", "--model", "nnunet:resenc-m",
                           "--patch", "100", "--backend", "simulate"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: patch 100x100x100") and len(done.stderr.strip().splitlines()) == 1
