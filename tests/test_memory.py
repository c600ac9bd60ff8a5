"""The memory engine: simulate equals cpu to the byte, breakdowns sum to the peak, depth growth,
and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from revprof import ArchSpec, RevprofError, spec_from_options
from revprof.cli.app import app
from revprof.recipe import PAPER
from revprof.memory import CATEGORIES, MemoryReport, StorageTracker, measure_memory
from revprof.memory.tracker import rounded
from revprof.units import format_bytes, parse_bytes

TINY = spec_from_options(width=8, levels=3, depth=2)
SPECS = [
    pytest.param(TINY, id="revunet-reversible"),
    pytest.param(TINY.with_execution("plain"), id="revunet-plain"),
    pytest.param(TINY.with_execution("checkpoint"), id="revunet-checkpoint"),
    pytest.param(spec_from_options(width=8, levels=3, reversible="encoder", checkpoint=True), id="revunet-mixed"),
    pytest.param(spec_from_options(arch="nonewnet", width=6, levels=3, groups=3), id="nonewnet-plain"),
    pytest.param(spec_from_options(arch="nonewnet", width=6, levels=3, groups=3, checkpoint=True),
                 id="nonewnet-checkpoint"),
]


@pytest.mark.parametrize("spec", SPECS)
def test_simulate_equals_cpu_to_the_byte(spec):
    recipe = PAPER.with_overrides({"batch": 2})
    cpu = measure_memory(spec, (16, 16, 8), recipe, backend="cpu")
    simulated = measure_memory(spec, (16, 16, 8), recipe, backend="simulate")
    assert simulated.peak_bytes == cpu.peak_bytes
    assert simulated.breakdown == cpu.breakdown
    assert simulated.timeline.bytes == cpu.timeline.bytes
    assert simulated.saved_after_forward == cpu.saved_after_forward


@pytest.mark.parametrize("spec", SPECS)
def test_breakdown_sums_to_peak_and_parts_are_sane(spec):
    report = measure_memory(spec, 16, backend="simulate")
    assert tuple(report.breakdown) == CATEGORIES
    assert sum(report.breakdown.values()) == report.peak_bytes
    assert report.peak_bytes == max(report.timeline.bytes)
    param_bytes = sum(rounded(4 * p) for p in _param_sizes(spec))
    assert report.breakdown["parameters"] == param_bytes
    assert report.params == sum(_param_sizes(spec))
    assert [p[1] for p in report.timeline.phases] == ["forward", "backward", "optimizer"] * 2
    assert set(report.saved_after_forward) >= {"encoder.0", "decoder.0"}


def _param_sizes(spec: ArchSpec) -> list[int]:
    from revprof import build_model

    with torch.device("meta"):
        return [p.numel() for p in build_model(spec).parameters()]


def test_adam_state_is_twice_the_parameters_at_a_second_step_peak():
    report = measure_memory(TINY.with_execution("plain"), 16, backend="simulate")
    assert report.peak_step == 1  # this network peaks in the second step, when Adam's state exists
    assert report.breakdown["optimizer_state"] == 2 * report.breakdown["parameters"] > 0


def test_tracker_counts_rounded_storages_and_frees():
    tracker = StorageTracker()
    with tracker:
        a = torch.empty(1000, dtype=torch.uint8)  # 1000 B -> 1024
        view = a[10:]  # same storage: not counted again
        b = torch.empty(10, dtype=torch.float32)  # 40 B -> 512
        assert tracker.live_bytes == 1024 + 512
        del a
        assert tracker.live_bytes == 1024 + 512  # the view keeps the storage alive
        del view, b
        torch.empty(1)
    assert tracker.peak.bytes == 1536
    assert tracker.live_bytes == 0


def test_reversible_depth_growth_is_tiny_next_to_plain():
    base = spec_from_options(width=8, levels=3)
    peaks = {e: [measure_memory(base.with_depth(d).with_execution(e), 32, backend="simulate").peak_bytes
                 for d in (1, 4)] for e in ("reversible", "plain")}
    plain_growth = peaks["plain"][1] - peaks["plain"][0]
    reversible_growth = peaks["reversible"][1] - peaks["reversible"][0]
    assert peaks["plain"][1] > 2 * peaks["plain"][0]
    assert reversible_growth < plain_growth / 10


def test_report_round_trips_through_json():
    report = measure_memory(TINY, 16, backend="simulate")
    again = MemoryReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.spec == report.spec and again.peak_bytes == report.peak_bytes
    assert again.timeline.spans() == report.timeline.spans()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"patch": 18}, "must be divisible by 2^(levels-1)=4", id="patch"),
        pytest.param({"recipe": "paper"}, "recipe must be a revprof.recipe.Recipe", id="recipe"),
        pytest.param({"backend": "gpu"}, "backend must be one of", id="backend"),
        pytest.param({"steps": 1}, "steps must be at least 2", id="steps"),

    ],
)
def test_bad_measure_arguments(kwargs, message):
    with pytest.raises(RevprofError) as error:
        measure_memory(TINY, **{"patch": 16, **kwargs})
    assert message in str(error.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_backend_without_gpu_is_a_clear_error():
    result = CliRunner().invoke(app, ["measure", "--backend", "cuda"])
    assert result.exit_code == 1
    assert "needs a CUDA GPU" in result.output and "Traceback" not in result.output


def test_measure_command_json_keys():
    result = CliRunner().invoke(app, ["measure", "--levels", "3", "--width", "8", "--patch", "16,16,8",
                                      "--backend", "simulate", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("spec", "patch", "batch", "precision", "backend", "device", "params", "peak_bytes", "breakdown"):
        assert key in data
    assert data["patch"] == [16, 16, 8] and sum(data["breakdown"].values()) == data["peak_bytes"]


def test_measure_command_table_and_bad_patch():
    runner = CliRunner()
    result = runner.invoke(app, ["measure", "--levels", "3", "--width", "8", "--patch", "16", "--backend", "cpu"])
    assert result.exit_code == 0, result.output
    assert "peak memory" in result.output and "activations" in result.output
    result = runner.invoke(app, ["measure", "--patch", "100"])
    assert result.exit_code == 1
    assert "axis D=100 must be divisible by 2^(levels-1)=16" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("text", "value"), [("11GiB", 11 * 2**30), ("12GB", 12 * 10**9),
                                             ("512 MiB", 512 * 2**20), ("1.5GiB", 3 * 2**29)])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["11 gigs", "11", "GiB", "eleven GiB"])
def test_parse_bytes_rejects(text):
    with pytest.raises(RevprofError, match="memory size must be a number with a unit"):
        parse_bytes(text)


def test_format_bytes():
    assert format_bytes(3 * 2**30) == "3.00 GiB"
    assert format_bytes(512) == "512 B"


@pytest.mark.parametrize("execution", ["reversible", "plain", "checkpoint"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_simulate_equals_cpu_under_autocast(execution, precision):
    spec = TINY.with_execution(execution)
    recipe = PAPER.with_overrides({"precision": precision})  # fp16: with its GradScaler
    cpu = measure_memory(spec, 16, recipe, backend="cpu")
    simulated = measure_memory(spec, 16, recipe, backend="simulate")
    assert simulated.peak_bytes == cpu.peak_bytes
    assert simulated.timeline.bytes == cpu.timeline.bytes


def test_cuda_autocast_policy_applies_only_inside_the_block():
    from torch.nn import functional as F

    from revprof.memory.cuda_autocast import cuda_autocast_policy

    x = torch.randn(1, 4, 4, 4, 4)

    def dtypes():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = F.conv3d(x, torch.randn(4, 4, 1, 1, 1))
            return F.group_norm(y, 2).dtype, F.max_pool3d(y, 2).dtype

    native = dtypes()
    with cuda_autocast_policy():
        assert dtypes() == (torch.float32, torch.bfloat16)  # CUDA: group_norm fp32, max_pool3d as is
    assert dtypes() == native == (torch.bfloat16, torch.float32)  # CPU's own policy is back


def test_uncounted_storage_stays_uncounted_when_an_op_returns_it_again():
    tracker = StorageTracker()
    with tracker:
        t = torch.zeros(16)  # 64 B -> 512
        assert tracker.live_bytes == 512
        tracker.uncount([t])
        assert tracker.live_bytes == 0
        t.add_(1)  # returns the same storage
        assert tracker.live_bytes == 0
        u = torch.zeros(16)
        assert tracker.live_bytes == 512
        del t, u
    assert tracker.live_bytes == 0


def test_adam_step_counters_are_not_counted_when_step_zero_is_the_peak():
    """A tiny network peaks in the first optimizer step, where Adam creates its state."""
    result = CliRunner().invoke(app, ["measure", "--width", "2", "--levels", "2", "--patch", "8,6,4",
                                      "--backend", "simulate", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["peak_phase"], report["peak_step"]) == ("optimizer", 0)
    from revprof import build_model

    spec = spec_from_options(width=2, levels=2)
    with torch.device("meta"):
        params = list(build_model(spec).parameters())
    moments = 2 * sum(rounded(4 * p.numel()) for p in params)
    # Adam's moments are classified from the moment they exist; the 512-B step counters
    # (host scalars on a GPU) are nowhere in the peak.
    assert report["breakdown"]["optimizer_state"] == moments
    assert report["peak_bytes"] == 88064  # 103936 when the counters were counted


def _oom_factory(spec: ArchSpec, when: str):
    """A real network whose forward (in the second step) or backward raises the allocator's error."""
    from revprof import build_model

    calls = {"n": 0}

    def build():
        model = build_model(spec)

        def raise_oom(*_):
            calls["n"] += 1
            if calls["n"] == 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 "
                                             "has a total capacity of 139.81 GiB")
        if when == "forward":
            model.head.register_forward_hook(raise_oom)
        else:
            model.head.register_full_backward_hook(raise_oom)
        return model

    return build


@pytest.mark.parametrize("when", ["forward", "backward"])
def test_out_of_memory_is_a_result(when):
    report = measure_memory(TINY, (16, 16, 16), backend="cpu", build=_oom_factory(TINY, when))
    assert report.status == "oom"
    assert report.oom["requested_bytes"] == 20 * 2**20
    assert report.oom["message"].startswith("CUDA out of memory")
    assert report.peak_bytes > 0 and sum(report.breakdown.values()) == report.peak_bytes
    assert report.peak_step == 1  # up to the moment it ran out
    assert json.loads(json.dumps(report.to_dict()))["status"] == "oom"


def test_build_measures_another_execution_of_the_spec_like_the_default():
    """``build=`` (how revprof bench passes RevTorch's execution) is measured exactly like
    ``build_model(spec)``: the same network through it gives the same bytes, op by op."""
    from revprof import build_model

    small = spec_from_options(widths="4,8", groups=2)
    default = measure_memory(small, 8, backend="cpu")
    built = measure_memory(small, 8, backend="cpu", build=lambda: build_model(small))
    assert built.peak_bytes == default.peak_bytes
    assert built.breakdown == default.breakdown
    assert built.timeline.bytes == default.timeline.bytes
    plain = measure_memory(small, 8, backend="cpu",
                           build=lambda: build_model(small.with_execution("plain")))
    assert plain.peak_bytes > default.peak_bytes  # the callable really builds the network
    assert plain.spec == small  # the spec still names the report
    with pytest.raises(RevprofError, match="build= makes another execution of an ArchSpec"):
        measure_memory(model="monai:unet", patch=8, backend="cpu", build=lambda: build_model(small))


def test_out_of_memory_in_a_bench_row_keeps_the_table(monkeypatch):
    from revprof.bench import memory as bench_memory
    from revprof.bench.memory import MemoryPlan, measure_tables
    from revprof.bench.peers import build_peer

    def build_peer_with_oom(peer, spec):
        model = build_peer(peer, spec)
        if peer == "plain":
            def raise_oom(*_):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")
            model.head.register_forward_hook(raise_oom)
        return model

    monkeypatch.setattr(bench_memory, "build_peer", build_peer_with_oom)  # the network, not the code under test
    small = spec_from_options(widths="4,8", groups=2)
    plan = MemoryPlan(small, ((8, 8, 8),), (1,), small, (8, 8, 8), (), ("reversible", "plain"),
                      nonewnet=False)
    rows = measure_tables(plan, "simulate")
    assert [(r.peer, r.status) for r in rows] == [("reversible", "ok"), ("plain", "oom")]
    assert rows[1].peak_bytes == -1 and rows[1].oom["requested_bytes"] == 2 * 2**30
    assert rows[0].peak_bytes > 0


def test_short_run_out_of_memory_is_a_result(tmp_path, monkeypatch):
    from revprof.train import TrainSettings, run_training
    from revprof.train import run as train_run

    spec = spec_from_options(width=4, levels=2, groups=2)
    original = train_run.build_model

    def build_with_oom(s):
        model = original(s)

        def raise_oom(*_):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB.")
        model.head.register_forward_hook(raise_oom)
        return model

    monkeypatch.setattr(train_run, "build_model", build_with_oom)
    settings = TrainSettings(patch=(8, 8, 8), recipe=PAPER.with_overrides({"steps": 2}), val_cases=1,
                             device="cpu", synthetic_cases=3, synthetic_shape=(16, 16, 16))
    result = run_training(spec, settings, progress=False, cache_dir=tmp_path)
    assert result.status == "oom" and result.steps_done == 0
    assert result.oom["requested_bytes"] == int(1.5 * 2**30)
    assert "requested 1.50 GiB" in result.error
