"""``revprof bench``: the peers agree on gradients, the reversible backward's shortcuts are exact
and safe, the memory rows match the memory engine, the targets are computed right, and the
command writes its record, tables and docs section."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from revprof import spec_from_options
from revprof.bench.memory import PeakRow, measure_peer, state_bytes
from revprof.bench.peers import EXECUTIONS, build_peer, peer_spec, revtorch_available
from revprof.bench.report import DOCS_END, DOCS_START, markdown, update_docs
from revprof.bench.targets import depth_growth, evaluate, peak_ratio
from revprof.bench.timing import TimingResult
from revprof.cli.app import app
from revprof.memory import measure_memory
from revprof.nn import CouplingBlock, ReversibleSequence
from revprof.nn.coupling import ResidualFunction
from revprof.nn.reversible import _AutocastState, _residual_backward
from conftest import require

SPEC = spec_from_options(width=8, levels=2, depth=2, groups=2)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def _grads(peer: str, state: dict, x: torch.Tensor):
    model = build_peer(peer, SPEC).double()
    model.load_state_dict(state)
    x = x.clone().requires_grad_(True)
    out = model(x)
    weights = torch.linspace(-1, 1, out.numel(), dtype=x.dtype).reshape(out.shape)
    (out * weights).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}, x.grad.clone()


@pytest.mark.parametrize("batch", [1, 2])
def test_peers_give_equal_gradients_in_float64(batch):
    peers = [p for p in EXECUTIONS if p != "revtorch" or revtorch_available()]
    require("revtorch" in peers, "RevTorch is not installed (pip install 'revprof[bench]')")
    state = build_peer("reversible", SPEC).double().state_dict()
    x = torch.randn(batch, 4, 8, 8, 8, dtype=torch.float64)
    results = {p: _grads(p, state, x) for p in peers}
    grads0, dx0 = results["plain"]
    for peer, (grads, dx) in results.items():
        assert grads.keys() == grads0.keys(), peer
        assert _relative(dx, dx0) < 1e-10, peer
        for name in grads0:
            assert _relative(grads[name], grads0[name]) < 1e-10, (peer, name)


def test_revtorch_peer_shares_modules_and_names():
    require(revtorch_available(), "RevTorch is not installed")
    ours, theirs = build_peer("reversible", SPEC), build_peer("revtorch", SPEC)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    sequence = theirs.encoders[0].blocks
    block = sequence._revtorch[0].reversible_blocks[0]
    assert block.f_block is sequence.blocks[0].f and block.g_block is sequence.blocks[0].g


def test_nonewnet_peer_is_the_paper_baseline():
    from revprof.spec import ArchSpec

    assert peer_spec("nonewnet", ArchSpec.paper_revunet(3)) == ArchSpec.paper_nonewnet()
    assert peer_spec("nonewnet", SPEC).widths == (4, 8)


@pytest.mark.parametrize("frozen", [False, True], ids=["fast-path", "autograd-path"])
def test_residual_backward_reconstructs_and_differentiates_exactly(frozen):
    torch.manual_seed(3)
    function = ResidualFunction(4, groups=2).double()
    with torch.no_grad():
        function.norm.weight.uniform_(0.5, 1.5)
        function.norm.bias.uniform_(-0.5, 0.5)
    if frozen:  # a frozen parameter sends the function through autograd on the recompute
        function.norm.bias.requires_grad_(False)
    assert function.supports_undo_backward(torch.zeros(1, dtype=torch.float64)) is not frozen
    source = torch.randn(2, 4, 5, 6, 7, dtype=torch.float64)
    other = torch.randn_like(source)
    grad_out = torch.randn_like(source)
    leaf = source.clone().requires_grad_(True)
    out = function(leaf)
    trainable = [p for p in function.parameters() if p.requires_grad]
    want = torch.autograd.grad(out, [leaf, *trainable], grad_out)
    with torch.no_grad():
        target = other + function(source)
    grad_source = torch.ones_like(source)
    got = _residual_backward(function, source, target, grad_source, grad_out,
                             _AutocastState("cpu", False, torch.bfloat16))
    assert _relative(target, other) < 1e-12
    assert _relative(grad_source - 1, want[0]) < 1e-12
    got = [g for g in got if g is not None]
    for a, b in zip(got, want[1:], strict=True):
        assert _relative(a, b) < 1e-12


def _sequence() -> ReversibleSequence:
    torch.manual_seed(0)
    return ReversibleSequence([CouplingBlock(8, groups=2) for _ in range(2)]).double()


def test_caller_gradient_is_not_overwritten():
    sequence = _sequence()
    x = torch.randn(1, 8, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    y = sequence(x)
    g = torch.randn_like(y)
    kept = g.clone()
    y.backward(g)
    assert torch.equal(g, kept)


def test_gradient_seen_by_a_hook_is_not_overwritten():
    sequence = _sequence()
    x = torch.randn(1, 8, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    seen = []
    y = sequence(x)
    y.register_hook(lambda grad: seen.append((grad, grad.clone())))
    (y * 3).sum().backward()
    assert torch.equal(seen[0][0], seen[0][1])


def test_shared_incoming_gradient_gives_plain_gradients():
    """Two sequences fed the same gradient buffer (by an addition): each must see it intact."""
    a, b = _sequence(), _sequence()
    x = torch.randn(1, 8, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    ((a(x) + b(x * 2)) * 3).sum().backward()
    got = x.grad.clone()
    x.grad = None
    plain_a = ReversibleSequence(a.blocks, execution="plain")
    plain_b = ReversibleSequence(b.blocks, execution="plain")
    ((plain_a(x) + plain_b(x * 2)) * 3).sum().backward()
    assert _relative(got, x.grad) < 1e-12


def test_second_backward_is_a_clear_error():
    sequence = _sequence()
    x = torch.randn(1, 8, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    loss = (sequence(x) * 2).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backpropagated once"):
        loss.backward()


@pytest.mark.parametrize("peer", ["reversible", "plain"])
def test_measure_peer_matches_the_memory_engine(peer):
    spec = spec_from_options(width=8, levels=2, groups=2)
    row = measure_peer(peer, spec, 16, backend="simulate")
    report = measure_memory(spec.with_execution(peer), 16, backend="simulate")
    assert row.peak_bytes == report.peak_bytes
    assert row.breakdown == report.breakdown


def test_reversible_and_revtorch_simulate_equal_cpu():
    spec = spec_from_options(width=8, levels=2, groups=2)
    peers = ["reversible", "revtorch"] if revtorch_available() else ["reversible"]
    for peer in peers:
        simulated = measure_peer(peer, spec, 16, backend="simulate")
        counted = measure_peer(peer, spec, 16, backend="cpu")
        assert simulated.peak_bytes == counted.peak_bytes, peer


def _row(peer, depth, peak, state=0, patch=(128, 128, 128), table="paper"):
    return PeakRow(peer=peer, table=table, widths=[60], depth=depth, patch=list(patch),
                   peak_bytes=peak, state_bytes=state, params=0, peak_phase="backward",
                   peak_step=1, backend="simulate")


def test_targets_compute_ratios_and_verdicts():
    rows = [
        _row("reversible", 1, 300, 100), _row("reversible", 2, 400, 200),
        _row("revtorch", 1, 400), _row("revtorch", 2, 450),
        _row("checkpoint", 1, 400), _row("checkpoint", 2, 600),
        _row("plain", 1, 700), _row("plain", 2, 1000),
        _row("plain", 1, 1, patch=(160, 192, 160)),  # another patch: ignored
    ]
    assert peak_ratio(rows, "reversible", "revtorch", [1, 2]) == {"depth 1": 0.75, "depth 2": 400 / 450}
    assert depth_growth(rows) == {"depth 1→2": 1.0}
    timing = TimingResult("cpu", "thread_time", 1, [4, 8], 1, [8, 8, 8], 1, 3,
                          {"reversible": [1.2, 1.3, 1.1], "plain": [1.0, 1.0, 1.0],
                           "revtorch": [1.3, 1.2, 1.25]}).finish()
    assert timing.ratio_vs_plain["reversible"] == pytest.approx(1.2)
    assert timing.ratio_vs_revtorch["reversible"] == pytest.approx(1.2 / 1.25)
    results = {t.key: t for t in evaluate(rows, timing, depths=(1, 2))}
    assert results["memory_vs_revtorch"].ratio == pytest.approx(400 / 450)
    assert results["memory_vs_revtorch"].passed is False  # 0.889 > 0.80
    assert results["memory_vs_checkpoint"].ratio == pytest.approx(0.75)
    assert results["memory_vs_checkpoint"].passed is True  # at the limit passes
    assert results["memory_vs_plain"].ratio == pytest.approx(300 / 700)
    assert results["depth_growth"].passed is True
    assert results["time_vs_plain"].passed is True
    assert results["time_vs_revtorch"].passed is True
    missing = {t.key: t for t in evaluate(rows[:2], None, depths=(1, 2))}
    assert missing["memory_vs_plain"].passed is None and missing["time_vs_plain"].ratio is None


def test_state_bytes_are_four_rounded_copies():
    params = [torch.zeros(10), torch.zeros(200)]  # 40 B and 800 B: 512 and 1024 rounded
    assert state_bytes(params) == 4 * (512 + 1024)


def test_update_docs_keeps_what_is_outside_the_markers(tmp_path):
    path = tmp_path / "benchmarks.md"
    update_docs(path, "first")
    assert DOCS_START in path.read_text() and "first" in path.read_text()
    path.write_text("# Title\n\nhand-written\n\n" + DOCS_START + "\nold\n" + DOCS_END + "\n\ntail\n")
    update_docs(path, "new tables")
    text = path.read_text()
    assert "hand-written" in text and "tail" in text and "new tables" in text and "old" not in text


@pytest.mark.slow
def test_bench_quick_writes_json_markdown_and_docs(tmp_path):
    docs = tmp_path / "docs.md"
    docs.write_text("# Benchmarks\n\nintro by others\n")
    result = CliRunner().invoke(app, ["bench", "--quick", "--out", str(tmp_path / "out"),
                                      "--docs", str(docs), "--update-docs"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "bench-quick.json").read_text())
    assert record["quick"] is True and record["machine"]["cpu"]
    peers = {r["peer"] for r in record["memory"]}
    assert {"reversible", "plain", "checkpoint", "nonewnet"} <= peers
    assert all(r["peak_bytes"] > 0 for r in record["memory"])
    assert {t["key"] for t in record["targets"]} >= {"memory_vs_plain", "time_vs_plain"}
    assert set(record["timing"]["median"]) == set(record["plan"]["peers"])
    md = (tmp_path / "out" / "bench-quick.md").read_text()
    assert md == markdown(record)
    assert "| blocks/level |" in md and "### Targets" in md and "Not run" in md
    text = docs.read_text()
    assert "intro by others" in text and DOCS_START in text and "### Step time" in text
    assert "**fail**" not in md  # the quick settings test no target: no verdicts


@pytest.mark.slow  # a quick bench: seconds on a quiet machine
def test_bench_by_default_writes_its_own_folder_and_leaves_the_docs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracked = tmp_path / "docs" / "benchmarks.md"
    tracked.parent.mkdir()
    tracked.write_text("# Benchmarks\n")
    refused = CliRunner().invoke(app, ["bench", "--quick", "--docs", str(tracked)])
    assert refused.exit_code == 1 and "needs --update-docs" in refused.output
    assert not (tmp_path / "bench-results").exists()
    result = CliRunner().invoke(app, ["bench", "--quick"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "bench-results" / "bench-quick.json").is_file()
    assert not (tmp_path / "benchmarks").exists()
    assert tracked.read_text() == "# Benchmarks\n"
    assert "**fail**" not in result.output
