"""Foreign 2-D networks through revprof's measurement (issue 23): torchvision classifiers on
``(B, C, H, W)`` images, the ground truth's loop (a batch copied from the host each step,
``torch.max(outputs, 1)`` after the step), networks that cannot be built over fake tensors, and the
cuBLAS workspace a GPU run adds to the allocator.

Small batches and images keep these fast; the measured runs' own sizes are in the benchmark.
"""

from __future__ import annotations

import pytest
import torch

from conftest import require
from memtracker import memtracker_peak
from revprof.errors import RevprofError
from revprof.memory.allocator import LARGE_BUFFER, replay
from revprof.memory.measure import measure_memory
from revprof.memory.workspaces import (
    CUBLAS_WORKSPACE_BYTES,
    CUBLASLT_WORKSPACE_BYTES,
    blas_ops_in,
    cublas_workspace_bytes,
    with_blas_workspaces,
)
from revprof.nn._torchvision import ensure_torchvision_importable
from revprof.nn.factory import model_spec
from revprof.recipe import Recipe
from revprof.spec import parse_input_shape, parse_patch, parse_spatial, validate_patch

IMAGE = (32, 32)


@pytest.fixture(scope="module")
def torchvision_models():
    require(ensure_torchvision_importable() != "not-installed",
            "torchvision is not installed (make install adds revprof[torchvision])")
    import torchvision.models

    return torchvision.models


def classification(optimizer: str, **fields) -> Recipe:
    """The ground truth's step: ``torch.optim`` defaults, cross-entropy on class labels, each batch
    copied from the host, ``torch.max(outputs, 1)`` after the step."""
    settings = {"zero_grad": "after_loss", **fields}
    return Recipe(name="truth", optimizer=optimizer, lr=1e-3, loss="ce", targets="labels",
                  after_step="max", transfer="per_step", **settings)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resnet18_on_2d_images_simulate_equals_cpu_and_memtracker(torchvision_models, optimizer,
                                                                  monkeypatch):
    recipe = classification(optimizer, batch=2)
    spec = model_spec("torchvision.models:resnet18", {"weights": None, "num_classes": 10})
    simulated = measure_memory(spec, IMAGE, recipe, backend="simulate", steps=3)
    counted = measure_memory(spec, IMAGE, recipe, backend="cpu", steps=3)
    assert simulated.patch == IMAGE and simulated.spec.outputs == ((2, 10),)
    assert simulated.peak_bytes == counted.peak_bytes > 0
    assert simulated.breakdown == counted.breakdown
    assert simulated.timeline.bytes == counted.timeline.bytes
    assert simulated.predicted_reserved_bytes == counted.predicted_reserved_bytes
    theirs, counters = memtracker_peak(spec, IMAGE, recipe, monkeypatch, steps=3)
    # MemTracker counts Adam's host step counters (revprof leaves them out: host scalars on a GPU)
    assert theirs == simulated.peak_bytes + (counters if optimizer == "adam" else 0), (
        theirs, simulated.peak_bytes, counters, simulated.peak_phase, simulated.peak_step)


def test_batch_norm_running_statistics_are_device_memory(torchvision_models):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 5))
    report = measure_memory(model=net, patch=(8, 8), recipe=classification("sgd", batch=2),
                            backend="simulate")
    # first the conv's weight and bias, then the norm's weight and bias, then its three buffers,
    # as module.to(device) allocates them (512-byte blocks: all of these are tiny)
    sizes = [nbytes for action, _, nbytes, op, _ in report.allocation_log if op == "setup"]
    assert sizes[:7] == [4 * 3 * 3 * 3 * 4, 16, 16, 16, 16, 16, 8]


def test_the_loop_drops_the_last_copy_before_the_next(torchvision_models):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 6))
    recipe = classification("sgd", batch=2, zero_grad="end")
    report = measure_memory(model=net, patch=(4, 4), recipe=recipe, backend="simulate", steps=3,
                            in_channels=3)
    image = 2 * 3 * 4 * 4 * 4
    copies = [i for i, (action, _, nbytes, op, _) in enumerate(report.allocation_log)
              if action == "alloc" and nbytes == image and op.startswith("aten._to_copy")]
    assert len(copies) == 3
    live = {}
    for action, key, nbytes, _, _ in report.allocation_log:
        if action == "alloc" and nbytes == image:
            assert not live, "a new copy of the batch exists while the last one is alive"
            live[key] = nbytes
        elif action == "free":
            live.pop(key, None)


def test_the_accuracy_op_runs_before_a_zero_grad_at_the_end(torchvision_models):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 6))
    report = measure_memory(model=net, patch=(4, 4), recipe=classification("sgd", batch=2, zero_grad="end"),
                            backend="simulate", steps=2, in_channels=3)
    log = report.allocation_log
    last_max = max(i for i, entry in enumerate(log) if entry[0] == "alloc" and entry[3] == "aten.max.dim")
    weight_grads = {key for action, key, nbytes, op, _ in log
                    if action == "alloc" and nbytes == 6 * 48 * 4 and op == "aten.mm.default"}
    last_grad_free = max(i for i, entry in enumerate(log) if entry[0] == "free" and entry[1] in weight_grads)
    assert last_grad_free > last_max  # `_, preds = torch.max(outputs, 1)`, then `zero_grad()`


@pytest.mark.parametrize("builder", [pytest.param("regnet_x_400mf", id="regnet"),
                                     pytest.param("convnext_tiny", id="convnext", marks=pytest.mark.slow)])
def test_networks_that_fake_tensors_cannot_build_are_simulated(torchvision_models, builder):
    # their __init__ reads a tensor's value (_local_scalar_dense): built on meta or the CPU, then
    # copied with fake parameters
    spec = model_spec(f"torchvision.models:{builder}", {"weights": None, "num_classes": 10})
    assert spec.in_channels == 3
    recipe = classification("adamw", batch=2)  # (batch norm needs 2 values per channel)
    simulated = measure_memory(spec, IMAGE, recipe, backend="simulate")
    counted = measure_memory(spec, IMAGE, recipe, backend="cpu")
    assert simulated.peak_bytes == counted.peak_bytes > 0
    assert simulated.predicted_reserved_bytes == counted.predicted_reserved_bytes


def test_revprofs_own_networks_stay_3d():
    from revprof.spec import ArchSpec

    with pytest.raises(RevprofError, match="patch must be one size like 128 or three"):
        measure_memory(ArchSpec.paper_revunet(), (64, 64), backend="simulate")


@pytest.mark.parametrize(("value", "expected"), [
    ("86,86", (86, 86)), ((86, 86), (86, 86)), ("128", (128, 128, 128)), (64, (64, 64, 64)),
    ("16,32,48", (16, 32, 48)), ((40,), (40,)),
])
def test_spatial_sizes(value, expected):
    assert parse_spatial(value) == expected


@pytest.mark.parametrize("value", ["86,x", "1,2,3,4", "0,8", (8, -1), "", "1025,8"])
def test_bad_spatial_sizes_are_one_line(value):
    with pytest.raises(RevprofError) as raised:
        parse_spatial(value)
    assert "\n" not in str(raised.value) and repr(value) in str(raised.value)


def test_input_shape():
    assert parse_input_shape("3,86,86") == (3, (86, 86))
    assert parse_input_shape("4,128,128,128") == (4, (128, 128, 128))
    assert parse_input_shape([1, 100]) == (1, (100,))
    for bad in ("3", "3,86,86,86,86", "3,0,86", "a,b,c"):
        with pytest.raises(RevprofError, match="input must be the channels and 1 to 3 spatial sizes"):
            parse_input_shape(bad)


def test_validate_patch_keeps_arch_specs_3d_and_checks_any_network():
    from revprof.spec import ArchSpec

    spec = model_spec(torch.nn.Conv2d(3, 4, 1), patch_multiple=4)
    assert validate_patch(spec, (8, 12)) == (8, 12)
    with pytest.raises(RevprofError, match="axis W=10 must be divisible by 2\\^\\(levels-1\\)=4"):
        validate_patch(spec, (8, 10))
    assert validate_patch(ArchSpec.paper_revunet(), "32") == parse_patch(32)


def test_cublas_workspace_is_one_persistent_block_after_the_first_matmul():
    log = [("alloc", 1, 4096, "setup", 0), ("alloc", 2, 2048, "aten.convolution.default", 1),
           ("alloc", 3, 1024, "aten.addmm.default", 2), ("free", 2, 0, "", 3),
           ("alloc", 4, 1024, "aten.mm.default", 4), ("free", 3, 0, "", 5)]
    events = with_blas_workspaces(log, CUBLAS_WORKSPACE_BYTES)
    assert events == [("alloc", 1, 4096), ("alloc", 2, 2048), ("alloc", 3, 1024),
                      ("alloc", 5, CUBLAS_WORKSPACE_BYTES), ("alloc", 6, CUBLASLT_WORKSPACE_BYTES),
                      ("free", 6, 0), ("free", 2, 0), ("alloc", 4, 1024), ("free", 3, 0)]
    assert blas_ops_in(log) == 2
    plain = replay([e[:3] for e in log])
    with_workspace = replay(events)
    # 8.125 MiB goes to the large pool, which has no free block: one 20 MiB segment; cuBLASLt's
    # 1 MiB is a small-pool request and fits the 2 MiB segment the tensors opened
    assert with_workspace.max_reserved_bytes == plain.max_reserved_bytes + LARGE_BUFFER
    no_blas = [entry for entry in log if "mm" not in entry[3]]
    assert with_blas_workspaces(no_blas, CUBLAS_WORKSPACE_BYTES) == [e[:3] for e in no_blas]


def test_cublas_workspace_size_follows_torch():
    assert CUBLAS_WORKSPACE_BYTES == 8_519_680  # 4096 KiB * 2 + 16 KiB * 8
    assert cublas_workspace_bytes((8, 6)) == cublas_workspace_bytes((8, 9)) == 8_519_680
    assert cublas_workspace_bytes((9, 0)) == 32 * 2**20


INPUT_ERRORS = [
    pytest.param(["measure", "--input", "3,86,86"], "--input 3,86,86 sets the input of a --model network",
                 id="own-network"),
    pytest.param(["plan", "--budget", "8GiB", "--input", "3,86,86"], "revprof's own networks are 3-D",
                 id="plan-own-network"),
    pytest.param(["measure", "--model", "torchvision.models:resnet18", "--input", "3,86,86",
                  "--in-channels", "3"], "drop --in-channels", id="with-in-channels"),
    pytest.param(["measure", "--model", "torchvision.models:resnet18", "--input", "3,86,86",
                  "--patch", "64"], "gives the patch (its sizes after the channels); drop --patch",
                 id="with-patch"),
    pytest.param(["model", "--model", "torchvision.models:resnet18", "--input", "3,86,x"],
                 "input must be the channels and 1 to 3 spatial sizes", id="not-numbers"),
    pytest.param(["measure", "--model", "torchvision.models:resnet18", "--input", "3,8,8,8,8"],
                 "got '3,8,8,8,8'", id="too-many"),
]


@pytest.mark.parametrize(("args", "message"), INPUT_ERRORS)
def test_input_errors_are_one_line(args, message):
    from typer.testing import CliRunner

    from revprof.cli.app import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and message in line, line


def test_input_sets_the_channels_and_the_2d_patch(torchvision_models):
    import json

    from typer.testing import CliRunner

    from revprof.cli.app import app

    result = CliRunner().invoke(app, ["measure", "--model", "torchvision.models:mobilenet_v3_small",
                                      "--model-kwargs", '{"num_classes": 10}', "--input", "3,32,32",
                                      "--backend", "simulate", "--set", "targets=labels",
                                      "--set", "loss=ce", "--set", "batch=2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["patch"] == [32, 32] and report["spec"]["in_channels"] == 3
    assert report["spec"]["outputs"] == [[2, 10]] and report["peak_bytes"] > 0
