"""Modules from network descriptions: the one place that knows how each kind of
:class:`~revprof.network.Network` is built and where its activations are attributed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from revprof.errors import RevprofError
from revprof.network import Network
from revprof.nn.factory import ModelSpec
from revprof.nn.unet import build_model
from revprof.spec import ArchSpec


def build_network(network: Network, fake: bool = False) -> nn.Module:
    """The module ``network`` describes (``fake``: called inside ``FakeTensorMode``; a foreign
    module given as an instance is copied with fake parameters).

    Raises:
        RevprofError: a factory that cannot be loaded, raises or returns no ``nn.Module``.
        TypeError: not a network description.
    """
    if isinstance(network, ModelSpec):
        return network.build(fake=fake)
    if isinstance(network, ArchSpec):
        return build_model(network)
    raise TypeError(f"build_network needs an ArchSpec or a ModelSpec; got {type(network).__name__}")


def network_parts(network: Network, model: nn.Module) -> dict[str, nn.Module]:
    """The parts of ``model`` saved-activation bytes are attributed to: a revprof U-Net's stem,
    encoder and decoder levels and head; a foreign network's direct children."""
    if isinstance(network, ModelSpec):
        return dict(model.named_children())
    return attribution_parts(model)


def attribution_parts(model: nn.Module) -> dict[str, nn.Module]:
    """The parts of a revprof U-Net (or another execution of its blocks with the same attribute
    names): ``stem``, ``encoder.i``, ``decoder.i``, ``head``."""
    parts: dict[str, nn.Module] = {}
    for name in ("stem", "encoders", "decoders", "head"):
        module = getattr(model, name, None)
        if isinstance(module, nn.ModuleList):
            for i, child in enumerate(module):
                parts[f"{name[:-1]}.{i}"] = child
        elif module is not None:
            parts[name] = module
    return parts


def network_from_dict(data: Mapping[str, Any]) -> Network:
    """The network :meth:`~revprof.network.Network.to_dict` wrote: a :class:`ModelSpec` when
    ``arch`` is ``model``, else an :class:`ArchSpec`.

    Raises:
        RevprofError: not a mapping, or an invalid spec.
    """
    if not isinstance(data, Mapping):
        raise RevprofError(f"a network must be a JSON object; got {type(data).__name__}")
    if data.get("arch") == "model":
        return ModelSpec.from_dict(data)
    return ArchSpec.from_dict(data)
