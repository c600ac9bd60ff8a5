"""The architecture options shared by every command that builds a network."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from revprof.cli._common import choice
from revprof.errors import RevprofError
from revprof.spec import ARCHS, ArchSpec, spec_from_options
from revprof.spec import Arch as ArchName
from revprof.train.specfile import SpecFile, read_spec_file

_PANEL = "Architecture"

Arch = Annotated[ArchName, typer.Option("--arch", help="revunet (partially reversible) or nonewnet "
                                        "(baseline).", parser=choice("arch", ARCHS),
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

SpecPath = Annotated[Path | None, typer.Option(
    "--spec", metavar="FILE", show_default=False, rich_help_panel=_PANEL,
    help="A spec file written by revprof export: its network replaces the architecture options, "
         "and its patch, batch, precision and training settings are the defaults.")]

_ARCH_PARAMETERS = ("arch", "levels", "width", "widths", "growth", "max_width", "depth",
                    "encoder_depth", "decoder_depth", "reversible", "checkpoint", "groups")


def given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was set on the command line or by its environment variable."""
    source = ctx.get_parameter_source(name)  # an enum of Typer's own (vendored) click
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def spec_or_file(ctx: typer.Context, options: SpecOptions,
                 path: Path | None) -> tuple[ArchSpec, SpecFile | None]:
    """The network of ``--spec FILE`` when given, else of the architecture options.

    Raises:
        RevprofError: ``--spec`` together with an architecture option, or a bad spec file.
    """
    if path is None:
        return options.build(), None
    clash = [name for name in _ARCH_PARAMETERS if given(ctx, name)]
    if clash:
        raise RevprofError(f"--spec {path} gives the network; drop "
                           f"--{clash[0].replace('_', '-')} (or drop --spec)")
    loaded = read_spec_file(path)
    return loaded.spec, loaded


def network_or_file(ctx: typer.Context, options: SpecOptions, factory: Any,
                    path: Path | None) -> tuple[Any, SpecFile | None]:
    """``--model``'s network when given, else that of ``--spec FILE`` or the architecture options.

    Raises:
        RevprofError: ``--model`` together with ``--spec``, or what :func:`spec_or_file` raises.
    """
    if factory is None:
        return spec_or_file(ctx, options, path)
    if path is not None:
        raise RevprofError("--spec and --model both name a network; give one of them")
    return factory, None


def file_default(ctx: typer.Context, name: str, value: Any, loaded: SpecFile | None,
                 from_file: Any) -> Any:
    """``value`` when option ``name`` was given (or there is no spec file), else ``from_file``."""
    if loaded is None or given(ctx, name) or from_file is None:
        return value
    return from_file


@dataclass(frozen=True)
class SpecOptions:
    """The raw architecture options of one command invocation."""

    arch: ArchName = "revunet"
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
