"""The ``--model`` options shared by ``model``, ``measure`` and ``plan``: any network by factory."""

from __future__ import annotations

from typing import Annotated

import typer

from revprof import bounds
from revprof.cli.spec_options import SpecOptions, given
from revprof.errors import RevprofError
from revprof.nn.factory import ModelSpec, model_spec, parse_model_kwargs
from revprof.nn.presets import PRESETS

_PANEL = "Any network (--model)"

Model = Annotated[str | None, typer.Option(
    "--model", rich_help_panel=_PANEL,
    help="A network by factory instead of --arch: PACKAGE.MODULE:FACTORY (imported, never "
         f"evaluated) or a preset: {', '.join(PRESETS)}.")]
ModelKwargs = Annotated[str | None, typer.Option(
    "--model-kwargs", rich_help_panel=_PANEL,
    help='Keyword arguments for the factory as a JSON object, e.g. \'{"init_filters": 16}\'.')]
InChannels = Annotated[int | None, typer.Option(
    "--in-channels", min=1, rich_help_panel=_PANEL,
    help="Input channels of a --model network (default: the factory's in_channels, else its first "
         "convolution's); revprof's own networks read the 4 BraTS modalities.")]
PatchMultiple = Annotated[int | None, typer.Option(
    "--patch-multiple", min=1, rich_help_panel=_PANEL,
    help="Patch axes of a --model network must be multiples of this power of two (default: the "
         "preset's, else the smallest power of two its forward accepts).")]


def model_from_options(model: str | None, model_kwargs: str | None, in_channels: int | None,
                       patch_multiple: int | None, arch_options: SpecOptions,
                       ctx: typer.Context | None = None) -> ModelSpec | None:
    """The :class:`ModelSpec` ``--model`` names, or ``None`` without ``--model``.

    Every option acts or is refused: ``--model-kwargs``, ``--in-channels`` and
    ``--patch-multiple`` act on a ``--model`` network only, the architecture options on
    revprof's own networks only. With ``ctx``, an architecture option counts as given when it
    was on the command line (``--growth 2.0`` too), else when it differs from its default.

    Raises:
        RevprofError: an option that does not apply to the kind of network, ``--in-channels``
            out of bounds, or as :func:`model_spec`.
    """
    if model is None:
        for name, value in (("--model-kwargs", model_kwargs), ("--in-channels", in_channels),
                            ("--patch-multiple", patch_multiple)):
            if value is not None:
                raise RevprofError(f"{name} applies to a --model network; revprof's own networks "
                                   f"(--arch) read the 4 BraTS modalities and take patches that "
                                   f"are multiples of 2**(levels-1); give --model or drop {name}")
        return None
    options = vars(arch_options)
    named = [name for name, value in options.items()
             if (given(ctx, name) if ctx is not None else value not in (None, False, 2.0, "revunet"))]
    if named:
        raise RevprofError(f"--model builds its own network; drop the architecture options "
                           f"({', '.join('--' + g.replace('_', '-') for g in named)})")
    if in_channels is not None:
        bounds.check_int("--in-channels", in_channels, 1, bounds.MAX_WIDTH)
    return model_spec(model, parse_model_kwargs(model_kwargs), in_channels=in_channels,
                      patch_multiple=patch_multiple)
