"""A per-part summary of a built network: widths, blocks, execution and parameter counts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from revprof.spec import ArchSpec, Execution


@dataclass(frozen=True)
class PartSummary:
    """One part of the network (stem, encoder.i, decoder.i, head)."""

    part: str
    width: int
    blocks: int
    execution: Execution
    parameters: int


@dataclass(frozen=True)
class ModelSummary:
    spec: ArchSpec
    rows: list[PartSummary]
    parameters: int

    def to_dict(self) -> dict[str, object]:
        return {"spec": self.spec.to_dict(), "parameters": self.parameters,
                "parts": [asdict(r) for r in self.rows]}


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def summarize(spec: ArchSpec) -> ModelSummary:
    """Summarise the network ``spec`` builds (built on the meta device: no memory is used)."""
    from revprof.nn.unet import build_model

    with torch.device("meta"):
        model = build_model(spec)
    rows = []
    if spec.arch == "revunet":
        rows.append(PartSummary("stem", spec.widths[0], 0, "plain", _count(model.stem)))
    revunet = spec.arch == "revunet"
    sides: tuple[tuple[Literal["encoder", "decoder"], nn.ModuleList, tuple[int, ...]], ...] = (
        ("encoder", model.encoders, spec.encoder_depth), ("decoder", model.decoders, spec.decoder_depth))
    for side, modules, depths in sides:
        order = range(spec.levels) if side == "encoder" else reversed(range(spec.levels))
        for i in order:
            execution = spec.level_execution(i, side)
            rows.append(PartSummary(f"{side}.{i}", spec.widths[i], depths[i] if revunet else 0,
                                    execution, _count(modules[i])))
    rows.append(PartSummary("head", spec.out_channels, 0, "plain", _count(model.head)))
    return ModelSummary(spec, rows, _count(model))


@dataclass(frozen=True)
class LayerSummary:
    """One module of a factory network: its dotted name, class and parameters (its own and its
    submodules', less those already counted in an earlier row at the same or a higher level)."""

    name: str
    kind: str
    parameters: int


@dataclass(frozen=True)
class FactoryModelSummary:
    spec: object
    rows: list[LayerSummary]
    parameters: int
    trainable: int

    def to_dict(self) -> dict[str, object]:
        return {"spec": self.spec.to_dict(), "parameters": self.parameters,  # type: ignore[attr-defined]
                "trainable": self.trainable, "layers": [asdict(r) for r in self.rows]}


def summarize_factory(spec: object, depth: int = 2) -> FactoryModelSummary:
    """The layer table of a :class:`~revprof.nn.factory.ModelSpec`'s network down to ``depth``
    levels of submodules (built on the meta device where it can be: ``ModelSpec.template``)."""
    model = spec.template()  # type: ignore[attr-defined]
    rows: list[LayerSummary] = []
    counted: list[tuple[str, int, set[int]]] = []  # (name, depth, parameter ids) of the rows so far
    for name, module in model.named_modules():
        level = name.count(".")
        if not name or level >= depth:
            continue
        earlier = set().union(*(ids for other, d, ids in counted
                                if d <= level and not name.startswith(other + ".")))
        own = {id(p): p.numel() for p in module.parameters() if id(p) not in earlier}
        counted.append((name, level, set(own)))  # a module shared with an earlier row counts there only
        rows.append(LayerSummary(name, type(module).__name__, sum(own.values())))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return FactoryModelSummary(spec, rows, _count(model), trainable)
