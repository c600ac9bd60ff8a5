"""CUDA backend against the simulation (``@pytest.mark.gpu``: skipped without a GPU, never in
CI), and the parts of ``benchmarks/gpu_validate.py`` that need no GPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from revprof import ArchSpec, spec_from_options
from revprof.cli.app import app

pytestmark = pytest.mark.xdist_group("gpu")  # one device: its tests run one after another

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_validate.py"


def _measure(backend: str, *options: str) -> dict:
    result = CliRunner().invoke(app, ["measure", *options, "--backend", backend, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("options", "label"), [
    pytest.param(("--width", "16", "--levels", "3", "--patch", "64"), "small", id="small"),
    pytest.param(("--patch", "128"), "paper", id="paper-128"),
    pytest.param(("--patch", "128", "--precision", "bf16"), "paper", id="paper-128-bf16"),
])
def test_cuda_measurement_matches_simulate(options, label):
    benchmark_before = torch.backends.cudnn.benchmark
    cuda = _measure("cuda", *options)
    simulated = _measure("simulate", *options)
    assert torch.backends.cudnn.benchmark == benchmark_before  # restored
    assert cuda["status"] == "ok"
    assert cuda["environment"]["cudnn_benchmark"] is False  # forced off during the measurement
    assert cuda["gradient_reuse"] is True
    assert sum(cuda["breakdown"].values()) == cuda["tracked_peak_bytes"]
    assert cuda["untracked_bytes"] == cuda["peak_bytes"] - cuda["tracked_peak_bytes"]
    error = (simulated["peak_bytes"] - cuda["peak_bytes"]) / cuda["peak_bytes"]
    assert abs(error) <= 0.05, f"{label}: predicted {simulated['peak_bytes']} vs allocated " \
                               f"{cuda['peak_bytes']} ({100 * error:+.1f}%), untracked {cuda['untracked_bytes']}"


@pytest.mark.gpu
@pytest.mark.skipif(torch.version.cuda is None, reason="needs a CUDA build of torch")
def test_private_cublas_clear_still_exists():
    from revprof.memory._cuda_private import _CLEAR_NAME

    assert callable(getattr(torch._C, _CLEAR_NAME, None)), \
        f"torch {torch.__version__} has no torch._C.{_CLEAR_NAME}: update revprof/memory/_cuda_private.py"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_cuda_out_of_memory_is_a_result():
    from revprof.memory import measure_memory

    capacity = torch.cuda.get_device_properties(0).total_memory
    spec = ArchSpec.paper_revunet(4).with_execution("plain")
    batch = max(2, int(capacity / (34 * 2**30)) + 2)  # ~34 GiB per sample at 160x192x160
    report = measure_memory(spec, (160, 192, 160), batch=batch, backend="cuda")
    assert report.status == "oom"
    assert report.oom["capacity_bytes"] == capacity
    torch.cuda.empty_cache()
    again = measure_memory(spec_from_options(width=8, levels=3), 32, backend="cuda")
    assert again.status == "ok"  # the work goes on


# ---- no GPU needed -------------------------------------------------------------------------
def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_validate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_validate_lists_and_helps_without_a_gpu():
    listed = subprocess.run([sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip().endswith("24 configurations")
    for word in ("reversible", "plain", "checkpoint", "64x64x64", "128x128x128", "fp32", "bf16"):
        assert word in listed.stdout
    helped = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert helped.returncode == 0 and "--quick" in helped.stdout


def test_gpu_validate_plan_and_table():
    module = _load_script()
    full, quick = module.configurations(every=True), module.configurations(quick=True)
    assert len(full) == 48 and len(module.configurations()) == 24 and len(quick) == 6
    for plan in (module.configurations(), quick):
        assert {c[0] for c in plan} == set(module.EXECUTIONS)
        assert {c[2] for c in plan} == set(module.PATCHES) and {c[3] for c in plan} == set(module.PRECISIONS)
    rows = [{"execution": "plain", "depth": 1, "patch": [64, 64, 64], "precision": "fp32", "status": "ok",
             "predicted_bytes": 2**30, "allocated_bytes": 2**30 + 2**25, "reserved_bytes": 2**31,
             "untracked_bytes": 2**25, "gradient_reuse": None, "relative_error": -0.03},
            {"execution": "reversible", "depth": 4, "patch": [128, 128, 128], "precision": "bf16",
             "status": "oom", "predicted_bytes": 2**30, "gradient_reuse": None}]
    record = {"meta": {"device": "Test GPU"}, "results": rows, "summary": module._summary(rows), "seconds": 1}
    text = module.markdown(record)
    assert "| plain | 1 | 64x64x64 | fp32 | ok | 1.000 | 1.031 | 2.000 | 0.031 | n/a | -3.0% | — |  |" in text
    assert "| reversible | 4 | 128x128x128 | bf16 | oom |" in text
    assert record["summary"]["oom"] == 1 and record["summary"]["within_target"]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU exit")
def test_gpu_validate_without_a_gpu_says_so(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1 and "needs a CUDA GPU" in done.stderr
    assert not list(tmp_path.iterdir())
