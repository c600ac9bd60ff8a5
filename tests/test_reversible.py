"""Reversible execution: same loss and gradients as plain and checkpointed, exact inversion,
saved bytes that do not grow with depth, and the paper's parameter counts."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from revprof import ArchSpec, build_model, spec_from_options
from revprof.cli.app import app
from revprof.nn import CouplingBlock, ReversibleSequence

EXECUTIONS = ("reversible", "plain", "checkpoint")

SPECS = [
    pytest.param(spec_from_options(width=8, levels=3), id="w8-l3-d1"),
    pytest.param(spec_from_options(width=4, levels=2, depth="3,2"), id="w4-l2-d3,2"),
    pytest.param(spec_from_options(width=8, levels=3, encoder_depth=3, decoder_depth=1, groups=2),
                 id="fat-encoder"),
    pytest.param(spec_from_options(width=8, levels=3, depth=2, reversible="1,0,1"), id="mixed"),
]


def _loss_and_grads(spec: ArchSpec, state: dict, x: torch.Tensor):
    model = build_model(spec).to(x.dtype)
    model.load_state_dict(state)
    x = x.clone().requires_grad_(True)
    out = model(x)
    weights = torch.linspace(-1, 1, out.numel(), dtype=x.dtype).reshape(out.shape)
    loss = (out * weights).sum()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return loss.detach(), grads, x.grad.clone()


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 1e-4)],
                         ids=["float64", "float32"])
def test_gradients_equal_across_executions(spec, dtype, tolerance):
    state = build_model(spec).to(dtype).state_dict()
    x = torch.randn(2, 4, 8, 8, 8, dtype=dtype)
    results = {e: _loss_and_grads(spec.with_execution(e), state, x) for e in EXECUTIONS}
    if spec.execution == "mixed":
        results["mixed"] = _loss_and_grads(spec, state, x)
    loss0, grads0, dx0 = results["plain"]
    for execution, (loss, grads, dx) in results.items():
        assert abs((loss - loss0) / loss0).item() < tolerance, execution
        assert _relative(dx, dx0) < tolerance, execution
        assert grads.keys() == grads0.keys()
        for name in grads0:
            assert _relative(grads[name], grads0[name]) < tolerance, (execution, name)


def test_inversion_reconstructs_inputs():
    torch.manual_seed(1)
    blocks = [CouplingBlock(8, groups=2).double() for _ in range(4)]
    x = torch.randn(2, 8, 6, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        z = x.clone()
        for block in blocks:
            block.forward_(z)
        assert _relative(z, x) > 1e-3  # the blocks really changed it
        for block in reversed(blocks):
            block.inverse_(z)
    assert _relative(z, x) < 1e-12


def test_in_place_forward_matches_autograd_forward():
    block = CouplingBlock(8, groups=4).double()
    x = torch.randn(1, 8, 4, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(block.forward_(x.clone()), block(x), rtol=0, atol=1e-14)


def _saved_bytes(spec: ArchSpec, part: str) -> int:
    """Bytes autograd saves while the encoder level-0 sequence runs (counted by storage)."""
    model = build_model(spec)
    target = model.encoders[0].blocks if part == "sequence" else model
    storages: dict[int, int] = {}
    recording = [False]

    def pack(t: torch.Tensor) -> torch.Tensor:
        if recording[0] and not isinstance(t, torch.nn.Parameter):
            storages[id(t.untyped_storage())] = t.untyped_storage().nbytes()
        return t

    target.register_forward_pre_hook(lambda *_: recording.__setitem__(0, True))
    target.register_forward_hook(lambda *_: recording.__setitem__(0, False))
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    out.sum().backward()
    return sum(storages.values())


@pytest.mark.slow
def test_saved_bytes_do_not_grow_with_depth_when_reversible():
    base = spec_from_options(width=8, levels=2)
    reversible = [_saved_bytes(base.with_depth(d).with_execution("reversible"), "sequence") for d in (1, 2, 4)]
    plain = [_saved_bytes(base.with_depth(d).with_execution("plain"), "sequence") for d in (1, 2, 4)]
    assert reversible[0] == reversible[1] == reversible[2] > 0
    # plain grows linearly: the same increment per added block
    assert plain[1] - plain[0] > 0
    assert plain[2] - plain[1] == 2 * (plain[1] - plain[0])
    assert plain[0] > reversible[0]


def test_paper_parameter_counts():
    with torch.device("meta"):
        revunet = build_model(ArchSpec.paper_revunet())
        nonewnet = build_model(ArchSpec.paper_nonewnet())
    assert sum(p.numel() for p in revunet.parameters()) == 12_365_283
    assert sum(p.numel() for p in nonewnet.parameters()) == 12_425_253


def test_output_shape_and_range():
    model = build_model(spec_from_options(width=8, levels=3))
    out = model(torch.randn(2, 4, 8, 12, 16))
    assert out.shape == (2, 3, 8, 12, 16)
    assert out.min() >= 0 and out.max() <= 1


def test_no_grad_inference_matches_and_saves_nothing():
    spec = spec_from_options(width=8, levels=3, depth=2)
    model = build_model(spec)
    x = torch.randn(1, 4, 8, 8, 8)
    with torch.no_grad():
        y = model(x)
    assert y.grad_fn is None
    assert torch.allclose(y, model(x).detach(), atol=1e-6)
    with torch.inference_mode():
        assert torch.allclose(model(x), y, atol=1e-6)


def test_autograd_grad_reaches_parameters_through_reversible_sequence():
    """Parameters are inputs of the reversible Function, so torch.autograd.grad sees them."""
    sequence = ReversibleSequence([CouplingBlock(8, groups=2) for _ in range(2)]).double()
    x = torch.randn(1, 8, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    grads = torch.autograd.grad(sequence(x).square().sum(), [x, *sequence.parameters()])
    plain = ReversibleSequence(sequence.blocks, execution="plain")
    expected = torch.autograd.grad(plain(x).square().sum(), [x, *plain.parameters()])
    for got, want in zip(grads, expected, strict=True):
        assert _relative(got, want) < 1e-10


def test_nested_backward_through_reversible_inside_checkpoint():
    spec = spec_from_options(width=8, levels=2, depth=2)
    model = build_model(spec).double()
    x = torch.randn(1, 4, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    out = torch.utils.checkpoint.checkpoint(model, x, use_reentrant=False)
    (dx,) = torch.autograd.grad(out.sum(), x)
    plain = build_model(spec.with_execution("plain")).double()
    plain.load_state_dict(model.state_dict())
    (want,) = torch.autograd.grad(plain(x).sum(), x)
    assert _relative(dx, want) < 1e-10


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_mixed_precision_autocast(dtype):
    """Under autocast the reversible reconstruction adds less gradient error than the low
    precision itself does (plain autocast against plain float32, same weights and input)."""
    torch.manual_seed(0)
    spec = spec_from_options(width=8, levels=2, depth=2)
    state = build_model(spec).state_dict()
    x = torch.randn(1, 4, 8, 8, 8)
    grads = {}
    for name, execution, autocast in (("reversible", "reversible", True), ("plain", "plain", True),
                                      ("float32", "plain", False)):
        model = build_model(spec.with_execution(execution))
        model.load_state_dict(state)
        with torch.autocast("cpu", dtype=dtype, enabled=autocast):
            out = model(x)
        assert out.dtype == (dtype if autocast else torch.float32)
        out.float().sum().backward()
        grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
    precision_error = _relative(grads["plain"], grads["float32"])
    assert 0 < _relative(grads["reversible"], grads["plain"]) < precision_error


def test_model_command_prints_levels_and_totals():
    result = CliRunner().invoke(app, ["model"])
    assert result.exit_code == 0, result.output
    assert "12,365,283" in result.output and "decoder.0" in result.output
    result = CliRunner().invoke(app, ["model", "--arch", "nonewnet", "--json"])
    assert result.exit_code == 0, result.output
    assert '"parameters": 12425253' in result.output


def test_model_command_bad_input_is_one_line():
    result = CliRunner().invoke(app, ["model", "--widths", "60,121"])
    assert result.exit_code == 1
    assert "widths[1]=121 must be even" in result.output
    assert "Traceback" not in result.output


# ---- never silently wrong (issue 11) ---------------------------------------------------------
def _sequence_pair(frozen_norm: bool = False, depth: int = 3, width: int = 8):
    """A float64 reversible sequence and a plain one sharing its weights."""
    torch.manual_seed(3)
    sequence = ReversibleSequence([CouplingBlock(width, groups=2) for _ in range(depth)]).double()
    if frozen_norm:
        for name, p in sequence.named_parameters():
            if ".norm." in name:
                p.requires_grad_(False)
    return sequence, ReversibleSequence(sequence.blocks, execution="plain")


def test_backward_keeps_the_output_a_user_holds():
    sequence, plain = _sequence_pair()
    x = torch.randn(1, 8, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    out = sequence(x)
    before = out.detach().clone()
    out.square().sum().backward()
    assert torch.equal(out, before)  # the held output is untouched (the copy path)
    grads = [p.grad.clone() for p in sequence.parameters()]
    dx = x.grad.clone()
    for p in sequence.parameters():
        p.grad = None
    x.grad = None
    plain(x).square().sum().backward()
    assert _relative(dx, x.grad) < 1e-10
    for got, p in zip(grads, plain.parameters(), strict=True):
        assert _relative(got, p.grad) < 1e-10


@pytest.mark.parametrize("holder", ["hook", "detached-alias", "view"])
def test_backward_keeps_tensors_that_alias_the_output(holder):
    """A forward hook on ``encoders[0]`` keeps its output (the sequence's buffer), a detached
    alias of it or a view; the model output itself is dropped, as in a training loop."""
    model = build_model(spec_from_options(width=8, levels=2, depth=2)).double()
    x = torch.randn(1, 4, 8, 8, 8, dtype=torch.float64)
    keep = {"hook": lambda o: o, "detached-alias": lambda o: o.detach(), "view": lambda o: o[:, :2]}[holder]
    captured = []
    model.encoders[0].register_forward_hook(lambda m, i, o: captured.append(keep(o)))
    loss = model(x).sum()
    before = captured[0].detach().clone()
    loss.backward()
    assert torch.equal(captured[0], before)


def test_backward_reconstructs_in_place_when_nothing_holds_the_output():
    """The normal training loop: the sequence output is dropped before backward, so the buffer
    is reused (no copy): the saved-output storage is the one the backward rewrites."""
    from revprof.nn import reversible

    sequence, _ = _sequence_pair()
    x = torch.randn(1, 8, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    reversible.OWNERSHIP.reset()
    sequence(x).square().sum().backward()
    assert reversible.OWNERSHIP.outputs_reused == 1 and reversible.OWNERSHIP.outputs_copied == 0
    out = sequence(x)
    out.square().sum().backward()
    assert reversible.OWNERSHIP.outputs_copied == 1


@pytest.mark.parametrize("case", ["frozen-norm-float64", "bf16-autocast"])
def test_later_gradient_that_reads_the_output_is_right_on_the_autograd_path(case):
    """``a`` saves the sequence output; after the sequence's backward, ``grad(a, w)`` must see
    the output's true values (the fallback path once hid its in-place rewrite)."""
    frozen = case.startswith("frozen")
    sequence, plain = _sequence_pair(frozen_norm=frozen)
    dtype = torch.float64 if frozen else torch.float32
    sequence, plain = sequence.to(dtype), plain.to(dtype)
    x = torch.randn(1, 8, 4, 4, 4, dtype=dtype, requires_grad=True)
    w = torch.ones((), dtype=dtype, requires_grad=True)
    results = []
    for model in (sequence, plain):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not frozen):
            out = model(x)
        a = (out.float() * w).square().sum() if not frozen else (out * w).square().sum()
        out.sum().backward()
        (dw,) = torch.autograd.grad(a, w)
        results.append(dw)
    assert _relative(results[0], results[1]) < (1e-10 if frozen else 1e-2)


def test_double_backward_is_a_clear_error():
    sequence, _ = _sequence_pair()
    x = torch.randn(1, 8, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="first-order gradients only"):
        torch.autograd.grad(sequence(x).square().sum(), x, create_graph=True)


def test_nn_layer_validates_its_arguments():
    from revprof import RevprofError

    with pytest.raises(RevprofError, match=r"execution must be one of .*got 'plian' \(did you mean 'plain'\?\)"):
        ReversibleSequence([CouplingBlock(8, groups=2)], execution="plian")
    with pytest.raises(RevprofError, match="channels=7 must be even"):
        CouplingBlock(7, groups=1)
    with pytest.raises(RevprofError, match="groups=3 must divide"):
        CouplingBlock(8, groups=3)
    with pytest.raises(RevprofError, match="width 8"):
        ReversibleSequence([CouplingBlock(8, groups=2), CouplingBlock(4, groups=2)])


def test_private_torch_internals_still_work():
    """The reversible backward's in-place reuse rests on private torch internals
    (revprof/nn/_ownership.py). This fails loudly when a torch upgrade changes them, instead of
    the reuse silently switching off (about +18% peak on the paper network)."""
    from revprof.nn import _ownership

    status = _ownership.reuse_status()
    assert status.active, status.reason
    assert status.reason is None
    assert status.gradient_references is not None and status.output_references == 2
    t = torch.zeros(4)
    assert t._use_count() == 1
    assert _ownership.storage_references(t) == 1
    alias = t.detach()
    assert _ownership.storage_references(t) == 2
    del alias
    with _ownership.preserve_version_counter(t):
        t.add_(1)
    assert t._version == 0


@pytest.mark.slow
def test_gradient_reuse_is_active_and_recorded():
    from revprof.memory import measure_memory

    spec = spec_from_options(width=8, levels=2, depth=2)
    report = measure_memory(spec, 8, backend="simulate")
    assert report.gradient_reuse is True
    assert report.to_dict(timeline=False)["gradient_reuse"] is True
    assert measure_memory(spec.with_execution("plain"), 8, backend="simulate").gradient_reuse is None
    result = CliRunner().invoke(app, ["measure", "--width", "8", "--levels", "2", "--patch", "8",
                                      "--backend", "simulate"])
    assert result.exit_code == 0, result.output
    assert "gradient reuse" in result.output and "active" in result.output


def test_retain_graph_works_when_the_output_is_held_and_raises_when_consumed():
    sequence, plain = _sequence_pair()
    x = torch.randn(1, 8, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    out = sequence(x)
    loss = out.square().sum()
    (first,) = torch.autograd.grad(loss, x, retain_graph=True)  # `out` is held: a copy
    (second,) = torch.autograd.grad(loss, x)
    (want,) = torch.autograd.grad(plain(x).square().sum(), x)
    assert _relative(first, want) < 1e-10 and _relative(second, want) < 1e-10
    loss = sequence(x).sum()  # output not held: the backward consumes it
    torch.autograd.grad(loss, x, retain_graph=True)
    with pytest.raises(RuntimeError, match="backpropagated once"):
        torch.autograd.grad(loss, x)


def test_nn_constructors_take_their_settings_by_keyword():
    """Past the obvious first arguments, the nn layer's constructors are keyword-only, so a call
    cannot swap depth and groups (both whole numbers) without an error."""
    from torch import nn

    from revprof.nn.coupling import ResidualFunction
    from revprof.nn.unet import ConvNormAct, RevDecoderLevel, RevEncoderLevel, UNet3D

    blocks = [CouplingBlock(8, groups=2)]
    calls = [
        lambda: ResidualFunction(4, 2),
        lambda: CouplingBlock(8, 2),
        lambda: ReversibleSequence(blocks, "plain"),
        lambda: RevEncoderLevel(8, 8, 1, 2, "plain", True),
        lambda: RevDecoderLevel(8, 8, 1, 2, "plain", True),
        lambda: ConvNormAct(4, 8, 2),
        lambda: UNet3D(ArchSpec(), nn.Identity(), [], [], nn.Identity()),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="positional argument"):
            call()
    level = RevEncoderLevel(8, 8, depth=2, groups=2, execution="plain", downsample=True)
    assert len(level.blocks.blocks) == 2 and level.blocks.execution == "plain"
