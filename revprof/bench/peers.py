"""The executions ``revprof bench`` compares, all on the same architecture and weights layout.

- ``reversible``: revprof's reversible sequences (:mod:`revprof.nn.reversible`).
- ``plain``: ordinary autograd through the same coupling blocks (the non-reversible baseline).
- ``checkpoint``: ``torch.utils.checkpoint`` (non-reentrant) around each block sequence.
- ``revtorch``: the RevTorch package (PyPI ``revtorch``, the paper authors' library) as the
  reversible execution of the same coupling blocks: every level's sequence becomes a
  ``revtorch.ReversibleSequence`` of ``revtorch.ReversibleBlock(F, G, split_along_dim=1)`` over
  the very same ``F``/``G`` modules (same weights, same parameter names).
- ``nonewnet``: the paper's non-reversible No New-Net baseline (its own architecture, 30 base
  channels on the paper network), for the paper's comparison.

RevTorch is an optional, benchmark-only dependency (the ``bench`` extra); :func:`revtorch_available`
says whether it is installed and the benchmark leaves the peer out otherwise.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal, get_args

import torch
from torch import nn

from revprof.errors import RevprofError
from revprof.nn import build_model
from revprof.nn.reversible import ReversibleSequence
from revprof.spec import ArchSpec, Execution, spec_from_options

PeerExecution = Literal[Execution, "revtorch"]
"""The executions of one revunet, side by side (same weights layout): revprof's and RevTorch's."""
Peer = Literal[PeerExecution, "nonewnet"]
"""Everything the benchmark can build: the executions and the paper's No New-Net baseline."""

EXECUTIONS: tuple[PeerExecution, ...] = get_args(PeerExecution)
PEERS: tuple[Peer, ...] = get_args(Peer)


def revtorch_available() -> bool:
    """Whether the RevTorch package (``pip install revprof[bench]``) can be imported."""
    return importlib.util.find_spec("revtorch") is not None


class RevTorchSequence(nn.Module):
    """A level's coupling blocks run by RevTorch instead of revprof's reversible function.

    Holds the same :class:`~revprof.nn.coupling.CouplingBlock` modules under the same name
    (``blocks``), so the parameter names and the ``state_dict`` equal those of a
    :class:`~revprof.nn.reversible.ReversibleSequence`; the RevTorch wrapper around their ``f``
    and ``g`` is kept out of the module tree (it owns no parameters of its own).

    RevTorch differentiates only through its input: when the input does not require grad its
    parameters get no gradient (in the U-Nets every sequence input does, through the stem).
    """

    def __init__(self, blocks: nn.ModuleList) -> None:
        super().__init__()
        import revtorch

        self.blocks = blocks
        wrapped = nn.ModuleList([revtorch.ReversibleBlock(b.f, b.g, split_along_dim=1) for b in blocks])
        self._revtorch = (revtorch.ReversibleSequence(wrapped),)  # a tuple: not a submodule

    def extra_repr(self) -> str:
        return "execution='revtorch'"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._revtorch[0](x)


def _use_revtorch(model: nn.Module) -> nn.Module:
    """Replace every :class:`ReversibleSequence` of ``model`` by a :class:`RevTorchSequence`."""
    if not revtorch_available():
        raise RevprofError("the revtorch peer needs the RevTorch package: pip install 'revprof[bench]' "
                           "(or pip install revtorch==0.2.4)")
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, ReversibleSequence):
                setattr(module, name, RevTorchSequence(child.blocks))
    return model


def peer_spec(peer: Peer, spec: ArchSpec) -> ArchSpec:
    """The spec a peer builds for the revunet ``spec``.

    The executions keep the architecture and change only how sequences run (``revtorch`` is
    built as ``reversible`` and then rewired). ``nonewnet`` is the No New-Net baseline with half
    the revunet's widths (the paper: 30 base channels next to the revunet's 60), as many levels.
    """
    if peer not in PEERS:
        raise RevprofError(f"unknown peer {peer!r}; choose from {', '.join(PEERS)}")
    if peer == "nonewnet":
        if spec.widths == ArchSpec().widths:
            return ArchSpec.paper_nonewnet()
        return spec_from_options(arch="nonewnet", widths=[max(1, w // 2) for w in spec.widths],
                                 in_channels=spec.in_channels, out_channels=spec.out_channels)
    return spec.with_execution("reversible" if peer == "revtorch" else peer)


def build_peer(peer: Peer, spec: ArchSpec) -> nn.Module:
    """The network of ``peer`` for the revunet ``spec`` (see :func:`peer_spec`).

    The executions of one ``spec`` share parameter names and shapes, so one ``state_dict``
    loads into all of them.
    """
    model: nn.Module = build_model(peer_spec(peer, spec))
    if peer == "revtorch":
        model = _use_revtorch(model)
    return model


def peer_note(peer: Peer) -> str:
    """One line on what the peer is, for the report."""
    return {
        "reversible": "revprof reversible sequences (inputs reconstructed in place)",
        "plain": "ordinary autograd through the same coupling blocks",
        "checkpoint": "torch.utils.checkpoint (non-reentrant) per block sequence",
        "revtorch": "RevTorch 0.2.4 ReversibleSequence over the same F/G modules",
        "nonewnet": "No New-Net baseline (non-reversible; 30 base channels on the paper net)",
    }[peer]


def versions() -> dict[str, Any]:
    """Versions of the packages the peers come from."""
    found: dict[str, Any] = {"torch": torch.__version__}
    try:
        from importlib.metadata import version

        found["revtorch"] = version("revtorch") if revtorch_available() else None
        found["revprof"] = version("revprof")
    except Exception:  # noqa: BLE001 - metadata is informative only
        pass
    return found
