"""One interface for every network revprof measures, trains and plans.

revprof's own networks (:class:`revprof.spec.ArchSpec`) and any other PyTorch network built by a
factory (:class:`revprof.nn.factory.ModelSpec`) both are a :class:`Network`: what a training
step, the planner and the reports need to know, asked the same way, so no consumer branches on
the type. ``to_dict`` is tagged by ``arch`` (``revunet``, ``nonewnet`` or ``model``) and
:func:`revprof.nn.network_from_dict` reads either back. The modules are made by
:func:`revprof.nn.build_network` (the network package knows how to build both; the
descriptions here do not import it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

OutputKind = Literal["probabilities", "logits"]
"""What a network's forward returns: sigmoid probabilities (revprof's U-Nets end in a sigmoid)
or raw logits (every other network); the loss applies the sigmoid or softmax to logits itself."""


@runtime_checkable
class Network(Protocol):
    """What revprof needs of a network.

    Attributes:
        arch: the tag of :meth:`to_dict` (``revunet``, ``nonewnet``, ``model``).
        in_channels: ``C_in`` of the input ``(B, C_in, *spatial)``.
        out_channels: output channels (``None`` until a forward has found them).
        output_kind: :data:`OutputKind`.
    """

    @property
    def arch(self) -> str: ...

    @property
    def in_channels(self) -> int: ...

    @property
    def output_kind(self) -> OutputKind: ...

    @property
    def out_channels(self) -> int | None: ...

    @property
    def levels(self) -> int:
        """Resolution levels (a foreign network: those its patch multiple implies)."""
        ...

    @property
    def patch_multiple(self) -> int:
        """Every patch axis must be a multiple of this."""
        ...

    def checked(self, patch: Sequence[int], batch: int = 1, targets: str = "regions") -> Network:
        """This network, checked to train at ``(batch, in_channels, *patch)`` against ``targets``
        (a foreign network learns its output shapes from a forward over fake tensors).

        Raises:
            RevprofError: a patch axis that is not a multiple of :attr:`patch_multiple`, outputs
                that do not fit ``targets``, or a forward that fails.
        """
        ...

    def output_shapes(self, batch: int, patch: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        """The shape of each output at ``(batch, in_channels, *patch)`` (several: deep
        supervision, full resolution first)."""
        ...

    def describe(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...

    def to_json(self) -> str: ...
