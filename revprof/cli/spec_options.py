"""The architecture options shared by every command that builds a network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from revprof.spec import ArchSpec, spec_from_options

_PANEL = "Architecture"

Arch = Annotated[str, typer.Option("--arch", help="revunet (partially reversible) or nonewnet (baseline).",
                                   rich_help_panel=_PANEL)]
Levels = Annotated[int | None, typer.Option("--levels", help="Resolution levels (default 5).",
                                            rich_help_panel=_PANEL)]
Width = Annotated[int | None, typer.Option("--width", help="Top-level width, doubled per level "
                                           "(see --growth, --max-width).", rich_help_panel=_PANEL)]
Widths = Annotated[str | None, typer.Option("--widths", help="Explicit widths per level, e.g. "
                                            "60,120,240,360,480 (the paper's).", rich_help_panel=_PANEL)]
Growth = Annotated[float, typer.Option("--growth", help="Width growth factor per level.",
                                       rich_help_panel=_PANEL)]
MaxWidth = Annotated[int | None, typer.Option("--max-width", help="Cap on the width of any level.",
                                              rich_help_panel=_PANEL)]
Depth = Annotated[str | None, typer.Option("--depth", help="Coupling blocks per level, encoder and "
                                           "decoder: one number or one per level (1,2,2,3,3).",
                                           rich_help_panel=_PANEL)]
EncoderDepth = Annotated[str | None, typer.Option("--encoder-depth", help="Blocks per encoder level "
                                                  "(overrides --depth).", rich_help_panel=_PANEL)]
DecoderDepth = Annotated[str | None, typer.Option("--decoder-depth", help="Blocks per decoder level "
                                                  "(overrides --depth).", rich_help_panel=_PANEL)]
Reversible = Annotated[str | None, typer.Option("--reversible", help="Reversible levels: all, none, "
                                                "encoder, decoder or per level like 1,1,1,0,0.",
                                                rich_help_panel=_PANEL)]
Checkpoint = Annotated[bool, typer.Option("--checkpoint/--no-checkpoint", help="Run non-reversible "
                                          "levels with activation checkpointing.", rich_help_panel=_PANEL)]
Groups = Annotated[int | None, typer.Option("--groups", help="GroupNorm groups (default: the paper's "
                                            "30 where it divides the channels).", rich_help_panel=_PANEL)]


@dataclass(frozen=True)
class SpecOptions:
    """The raw architecture options of one command invocation."""

    arch: str = "revunet"
    levels: int | None = None
    width: int | None = None
    widths: str | None = None
    growth: float = 2.0
    max_width: int | None = None
    depth: str | None = None
    encoder_depth: str | None = None
    decoder_depth: str | None = None
    reversible: str | None = None
    checkpoint: bool = False
    groups: int | None = None

    def build(self) -> ArchSpec:
        """The validated spec (raises :class:`revprof.RevprofError` on bad options)."""
        return spec_from_options(
            arch=self.arch, levels=self.levels, width=self.width, widths=self.widths,
            growth=self.growth, max_width=self.max_width, depth=self.depth,
            encoder_depth=self.encoder_depth, decoder_depth=self.decoder_depth,
            reversible=self.reversible, checkpoint=self.checkpoint, groups=self.groups,
        )
