"""The architecture spec: one frozen, validated, JSON-round-trippable description of a network.

An :class:`ArchSpec` fixes everything :func:`revprof.build_model` needs. It is validated when it is
created, so no network is ever half-built from a bad spec.

Example:
    >>> spec = ArchSpec.paper_revunet()
    >>> spec.widths
    (60, 120, 240, 360, 480)
    >>> ArchSpec.from_dict(spec.to_dict()) == spec
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args, overload

from revprof.bounds import MAX_DEPTH, MAX_GROWTH, MAX_LEVELS, MAX_PATCH, MAX_WIDTH, check_float, check_int
from revprof.errors import RevprofError, look_up

Arch = Literal["revunet", "nonewnet"]
"""The architectures: the paper's partially reversible U-Net and its No New-Net baseline."""
Execution = Literal["reversible", "plain", "checkpoint"]
"""How a sequence of blocks runs: inputs recomputed from outputs, ordinary autograd, or
activation checkpointing."""
NetworkExecution = Literal[Execution, "mixed"]
"""How a whole network runs: one :data:`Execution` everywhere, or ``"mixed"`` per level."""
Precision = Literal["fp32", "bf16", "fp16"]
"""Training precision: float32, or autocast to bfloat16 / float16."""
ReversibleName = Literal["all", "none", "encoder", "decoder"]
"""The named reversibility patterns (a per-level list such as ``1,1,1,0,0`` is the other form)."""

# The choices as tuples, in the order of their types (what messages and help list).
ARCHS: tuple[Arch, ...] = get_args(Arch)
EXECUTIONS: tuple[Execution, ...] = get_args(Execution)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
REVERSIBLE_NAMES: tuple[ReversibleName, ...] = get_args(ReversibleName)

PAPER_REVUNET_WIDTHS = (60, 120, 240, 360, 480)
PAPER_WIDE_WIDTHS = (100, 200, 300, 400, 500)


@dataclass(frozen=True)
class ArchSpec:
    """A network: architecture, widths, depth and how each level is executed.

    Attributes:
        arch: ``"revunet"`` (the paper's partially reversible U-Net) or ``"nonewnet"`` (the paper's
            non-reversible No New-Net baseline: two 3×3×3 conv + GroupNorm + LeakyReLU per level).
        widths: channels per resolution level, top (full resolution) first; ``levels = len(widths)``.
        encoder_depth: coupling blocks per encoder level (revunet only; nonewnet uses 1).
        decoder_depth: coupling blocks per decoder level (revunet only; nonewnet uses 1).
        encoder_reversible: per level, whether the encoder sequence runs reversibly.
        decoder_reversible: per level, whether the decoder sequence runs reversibly.
        checkpoint: non-reversible sequences run under activation checkpointing instead of plainly.
        in_channels: input channels (4 MRI modalities).
        out_channels: output channels (3 regions: WT, TC, ET).
        groups: GroupNorm groups; for revunet they apply to each half of a coupling block, so
            ``groups`` must divide ``width // 2`` at every level.

    Raises:
        RevprofError: on any invalid field, naming the field, the rule and the value.
    """

    arch: Arch = "revunet"
    widths: tuple[int, ...] = PAPER_REVUNET_WIDTHS
    encoder_depth: tuple[int, ...] = (1, 1, 1, 1, 1)
    decoder_depth: tuple[int, ...] = (1, 1, 1, 1, 1)
    encoder_reversible: tuple[bool, ...] = (True, True, True, True, True)
    decoder_reversible: tuple[bool, ...] = (True, True, True, True, True)
    checkpoint: bool = False
    in_channels: int = 4
    out_channels: int = 3
    groups: int = 30

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        for name in ("encoder_depth", "decoder_depth", "encoder_reversible", "decoder_reversible"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _validate(self)

    # ---- derived views -------------------------------------------------------------------
    @property
    def levels(self) -> int:
        """Number of resolution levels."""
        return len(self.widths)

    @property
    def execution(self) -> NetworkExecution:
        """``"reversible"`` when every level is reversible, ``"plain"`` or ``"checkpoint"`` when
        none is, ``"mixed"`` otherwise."""
        reversible = self.encoder_reversible + self.decoder_reversible
        if self.arch == "revunet" and all(reversible):
            return "reversible"
        if not any(reversible):
            return "checkpoint" if self.checkpoint else "plain"
        return "mixed"

    def level_execution(self, level: int, side: Literal["encoder", "decoder"]) -> Execution:
        """How the ``side`` (``"encoder"``/``"decoder"``) sequence of ``level`` runs."""
        reversible = (self.encoder_reversible if side == "encoder" else self.decoder_reversible)[level]
        if reversible:
            return "reversible"
        return "checkpoint" if self.checkpoint else "plain"

    def with_execution(self, execution: Execution) -> ArchSpec:
        """The same network executed ``"reversible"``, ``"plain"`` or ``"checkpoint"`` everywhere."""
        look_up("execution", execution, EXECUTIONS)
        if execution == "reversible" and self.arch != "revunet":
            raise RevprofError(f"execution 'reversible' needs arch 'revunet'; got arch {self.arch!r}")
        flags = (execution == "reversible",) * self.levels
        return replace(self, encoder_reversible=flags, decoder_reversible=flags,
                       checkpoint=execution == "checkpoint")

    def with_depth(self, encoder: int | Sequence[int], decoder: int | Sequence[int] | None = None
                   ) -> ArchSpec:
        """The same network with other depths (one number for all levels, or one per level)."""
        enc = _per_level("encoder_depth", encoder, self.levels)
        dec = enc if decoder is None else _per_level("decoder_depth", decoder, self.levels)
        return replace(self, encoder_depth=enc, decoder_depth=dec)

    # ---- the network interface (revprof.network.Network) ---------------------------------
    @property
    def output_kind(self) -> Literal["probabilities", "logits"]:
        """The U-Nets end in a sigmoid: their outputs are region probabilities."""
        return "probabilities"

    @property
    def patch_multiple(self) -> int:
        """Every patch axis must be a multiple of ``2**(levels-1)`` (it halves at each level)."""
        return 2 ** (self.levels - 1)

    def output_shapes(self, batch: int, patch: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        """One output ``(batch, out_channels, *patch)``."""
        return ((batch, self.out_channels, *patch),)

    def checked(self, patch: Sequence[int], batch: int = 1, targets: str = "regions") -> ArchSpec:
        """This spec, after checking it trains at ``patch`` against ``targets``.

        Raises:
            RevprofError: a patch axis not divisible by :attr:`patch_multiple`, or targets other
                than ``regions`` (the U-Nets output sigmoid region probabilities).
        """
        validate_patch(self, patch)
        if targets != "regions":
            raise RevprofError(f"targets {targets!r} need a network that outputs logits; revprof's "
                               f"{self.arch} ends in a sigmoid over its {self.out_channels} region "
                               f"channels, so it trains against targets 'regions'",
                               field="targets")
        return self

    def describe(self) -> str:
        """A short human-readable summary, e.g. ``revunet 60-120-240-360-480 enc 1 dec 1 reversible``."""
        widths = "-".join(str(w) for w in self.widths)
        if self.arch == "nonewnet":
            return f"nonewnet {widths} {self.execution}"
        return (f"revunet {widths} enc {_compact(self.encoder_depth)} "
                f"dec {_compact(self.decoder_depth)} {self.execution_words()}")

    def execution_words(self) -> str:
        """Execution in words, with a per-level pattern for mixed networks."""
        if self.execution != "mixed":
            return self.execution
        enc = "".join("R" if r else "-" for r in self.encoder_reversible)
        dec = "".join("R" if r else "-" for r in self.decoder_reversible)
        rest = "checkpoint" if self.checkpoint else "plain"
        return f"mixed (enc {enc}, dec {dec}; R reversible, - {rest})"

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_dict` gives back an equal spec."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        """Build from :meth:`to_dict` output, or from a user table using the CLI-style keys.

        Accepted keys: every field name, plus the user forms ``levels``, ``width``, ``growth``,
        ``max_width``, ``depth``, ``reversible`` (``all|none|encoder|decoder`` or a per-level
        list) as documented in :func:`spec_from_options`.

        Raises:
            RevprofError: an unknown key (with the closest valid one) or an invalid value.
        """
        if not isinstance(data, Mapping):
            raise RevprofError(f"an architecture spec must be a table/mapping; got {type(data).__name__}")
        field_names = set(cls.__dataclass_fields__)
        user_names = {"levels", "width", "growth", "max_width", "depth", "reversible"}
        for key in data:
            look_up("spec key", key, sorted(field_names | user_names))
        if set(data) == field_names:  # a complete spec, as to_dict writes it
            return cls(**{k: _coerce_field(k, v) for k, v in data.items()})
        # a partial table: missing fields take the defaults of its arch (nonewnet: not reversible)
        return spec_from_options(**dict(data))

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise RevprofError(f"spec JSON is not valid JSON: {error}") from None
        return cls.from_dict(data)

    @classmethod
    def paper_revunet(cls, depth: int = 1) -> ArchSpec:
        """The paper's partially reversible U-Net (widths 60,120,240,360,480)."""
        return cls(encoder_depth=(depth,) * 5, decoder_depth=(depth,) * 5)

    @classmethod
    def paper_nonewnet(cls) -> ArchSpec:
        """The paper's No New-Net baseline with 30 base channels."""
        return cls(arch="nonewnet", widths=(30, 60, 120, 240, 480),
                   encoder_reversible=(False,) * 5, decoder_reversible=(False,) * 5)


def _compact(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else ",".join(str(v) for v in values)


def _coerce_field(key: str, value: Any) -> Any:
    if key in {"widths", "encoder_depth", "decoder_depth"}:
        return tuple(parse_int_list(key, value))
    if key in {"encoder_reversible", "decoder_reversible"}:
        return tuple(_bool_list(key, value))
    if key in {"in_channels", "out_channels", "groups"}:
        return _int(key, value)
    if key == "checkpoint":
        return _bool(key, value)
    return value


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise RevprofError(f"{name} must be a whole number; got {value!r}")
    return value


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0"}:
        return value.lower() in {"true", "yes", "1"}
    raise RevprofError(f"{name} must be true or false; got {value!r}")


def _split(name: str, value: str, example: str = "1,2,3") -> list[str]:
    parts = value.replace(" ", "").split(",")
    if "" in parts:
        raise RevprofError(f"{name} has an empty entry in {value!r}; give numbers separated by "
                           f"single commas like {example}")
    return parts


def parse_int_list(name: str, value: Any, example: str = "1,2,3") -> list[int]:
    """``"1,2,3"``, ``[1, 2, 3]`` or ``4`` as a list of whole numbers (the one list parser).

    Raises:
        RevprofError: an empty entry, an entry that is not a whole number, or a value that is not a
            list; the message names the field ``name``, the value and an ``example``.
    """
    if isinstance(value, str):
        value = _split(name, value, example)
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, Sequence):
        raise RevprofError(f"{name} must be a list of whole numbers like {example}; got {value!r}")
    return [_int(name, v) for v in value]


def _bool_list(name: str, value: Any) -> list[bool]:
    if isinstance(value, str):
        value = _split(name, value)
    if not isinstance(value, Sequence):
        raise RevprofError(f"{name} must be a per-level list of 0/1; got {value!r}")
    return [_bool(name, v) for v in value]


def _per_level(name: str, value: int | Sequence[int] | str, levels: int) -> tuple[int, ...]:
    values = parse_int_list(name, value)
    if len(values) == 1:
        values = values * levels
    if len(values) != levels:
        raise RevprofError(f"{name} must have one entry or levels={levels} entries; got {len(values)}"
                           f" ({','.join(map(str, values))})")
    return tuple(values)


def _validate(spec: ArchSpec) -> None:
    look_up("arch", spec.arch, ARCHS)
    levels = len(spec.widths)
    if not 2 <= levels <= MAX_LEVELS:
        raise RevprofError(f"levels must be from 2 to {MAX_LEVELS}; got {levels}")
    for name in ("in_channels", "out_channels", "groups"):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WIDTH:
            raise RevprofError(f"{name} must be a whole number from 1 to {MAX_WIDTH}; got {value!r}")
    for i, width in enumerate(spec.widths):
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
            raise RevprofError(f"widths[{i}] must be a whole number from 1 to {MAX_WIDTH}; "
                               f"got {width!r}")
    for name in ("encoder_depth", "decoder_depth", "encoder_reversible", "decoder_reversible"):
        values = getattr(spec, name)
        if len(values) != levels:
            raise RevprofError(f"{name} must have levels={levels} entries (one per level); "
                               f"got {len(values)}")
    for name in ("encoder_depth", "decoder_depth"):
        for i, depth in enumerate(getattr(spec, name)):
            if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
                raise RevprofError(f"{name}[{i}] must be from 1 to {MAX_DEPTH} blocks; got {depth!r}")
    if spec.arch == "revunet":
        for i, width in enumerate(spec.widths):
            if width % 2:
                raise RevprofError(f"widths[{i}]={width} must be even: a reversible coupling block "
                                   f"splits its channels in half")
            if (width // 2) % spec.groups:
                raise RevprofError(f"groups={spec.groups} must divide half of widths[{i}]={width} "
                                   f"(coupling halves have {width // 2} channels)")
    else:
        if any(spec.encoder_reversible) or any(spec.decoder_reversible):
            raise RevprofError("arch 'nonewnet' has no reversible levels; use reversible=none "
                               "(optionally with checkpoint)")
        for name in ("encoder_depth", "decoder_depth"):
            if any(d != 1 for d in getattr(spec, name)):
                raise RevprofError(f"arch 'nonewnet' has a fixed two-conv level; {name} must be 1; "
                                   f"got {','.join(map(str, getattr(spec, name)))}")
        for i, width in enumerate(spec.widths):
            if width % spec.groups:
                raise RevprofError(f"groups={spec.groups} must divide widths[{i}]={width}")


def parse_reversible(value: str | Sequence[Any], levels: int) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """Parse a reversibility pattern into (encoder, decoder) per-level flags.

    Args:
        value: ``all``, ``none``, ``encoder``, ``decoder`` or a per-level list such as ``1,1,1,0,0``
            (level 0 first; applies to encoder and decoder of each level).
        levels: number of levels.
    """
    if isinstance(value, str) and not value.replace(",", "").replace(" ", "").isdigit():
        name = look_up("reversible", value.strip().lower(), REVERSIBLE_NAMES)
        every, nothing = (True,) * levels, (False,) * levels
        return {
            "all": (every, every),
            "none": (nothing, nothing),
            "encoder": (every, nothing),
            "decoder": (nothing, every),
        }[name]
    flags = tuple(_bool_list("reversible", value))
    if len(flags) != levels:
        raise RevprofError(f"reversible must have levels={levels} entries like "
                           f"{','.join(['1'] * levels)}; got {len(flags)}")
    return flags, flags


def widths_from(width: int, levels: int, growth: float = 2.0, max_width: int | None = None) -> tuple[int, ...]:
    """Widths per level from a top width, a growth factor and an optional cap.

    ``widths_from(30, 5)`` is ``(30, 60, 120, 240, 480)``; each width is rounded to a whole number.
    """
    if not 1 <= width <= MAX_WIDTH:
        raise RevprofError(f"width must be a whole number from 1 to {MAX_WIDTH}; got {width}")
    growth = check_float("growth", growth, 1.0, MAX_GROWTH)
    if max_width is not None:
        check_int("max_width", max_width, 1, MAX_WIDTH)
    if not 2 <= levels <= MAX_LEVELS:
        raise RevprofError(f"levels must be from 2 to {MAX_LEVELS}; got {levels}")
    widths = []
    for i in range(levels):
        w = int(round(width * growth**i))  # at most 8192 * 16**9, a finite float
        if max_width is not None:
            w = min(w, max_width)
        widths.append(w)
    return tuple(widths)


def spec_from_options(
    *,
    arch: Arch = "revunet",
    levels: int | None = None,
    width: int | None = None,
    widths: str | Sequence[int] | None = None,
    growth: float = 2.0,
    max_width: int | None = None,
    depth: int | str | Sequence[int] | None = None,
    encoder_depth: int | str | Sequence[int] | None = None,
    decoder_depth: int | str | Sequence[int] | None = None,
    reversible: ReversibleName | str | Sequence[Any] | None = None,
    checkpoint: bool = False,
    in_channels: int = 4,
    out_channels: int = 3,
    groups: int | None = None,
    encoder_reversible: Sequence[Any] | None = None,
    decoder_reversible: Sequence[Any] | None = None,
) -> ArchSpec:
    """Build a spec from the CLI/TOML options; defaults give the paper's network for ``arch``.

    Args:
        arch: ``revunet`` or ``nonewnet``.
        levels: number of levels; taken from ``widths`` when those are given (default 5).
        width: top-level width, grown by ``growth`` per level and capped at ``max_width``.
        widths: explicit widths, e.g. ``"60,120,240,360,480"``.
        depth: blocks per level for encoder and decoder (one number, or one per level).
        encoder_depth, decoder_depth: override ``depth`` for one side.
        reversible: ``all`` (revunet default), ``none`` (nonewnet default), ``encoder``,
            ``decoder``, or a per-level list such as ``1,1,1,0,0``.
        checkpoint: non-reversible levels use activation checkpointing.
        groups: GroupNorm groups (default 30, the paper's).

    Raises:
        RevprofError: on conflicting or invalid options.
    """
    arch = look_up("arch", arch, ARCHS)
    if widths is not None and width is not None:
        raise RevprofError("give either width (with growth) or widths, not both")
    if widths is not None:
        width_tuple = tuple(parse_int_list("widths", widths))
        if levels is not None and levels != len(width_tuple):
            raise RevprofError(f"widths must have levels={levels} entries; got {len(width_tuple)} "
                               f"({','.join(map(str, width_tuple))})")
    else:
        n_levels = 5 if levels is None else _int("levels", levels)
        if not 2 <= n_levels <= MAX_LEVELS:
            raise RevprofError(f"levels must be from 2 to {MAX_LEVELS}; got {n_levels}")
        if width is None:
            if arch == "revunet" and n_levels == 5 and max_width is None and growth == 2.0:
                width_tuple = PAPER_REVUNET_WIDTHS
            else:
                width_tuple = widths_from(60 if arch == "revunet" else 30, n_levels, growth, max_width)
        else:
            width_tuple = widths_from(_int("width", width), n_levels, growth, max_width)
    n = len(width_tuple)
    base_depth = 1 if depth is None else depth
    enc = _per_level("encoder_depth", base_depth if encoder_depth is None else encoder_depth, n)
    dec = _per_level("decoder_depth", base_depth if decoder_depth is None else decoder_depth, n)
    if encoder_reversible is not None or decoder_reversible is not None:
        if reversible is not None:
            raise RevprofError("give reversible or encoder_reversible/decoder_reversible, not both")
        enc_rev = tuple(_bool_list("encoder_reversible", encoder_reversible or [False] * n))
        dec_rev = tuple(_bool_list("decoder_reversible", decoder_reversible or [False] * n))
    else:
        default = "all" if arch == "revunet" else "none"
        enc_rev, dec_rev = parse_reversible(default if reversible is None else reversible, n)
    return ArchSpec(
        arch=arch, widths=width_tuple, encoder_depth=enc, decoder_depth=dec,
        encoder_reversible=enc_rev, decoder_reversible=dec_rev, checkpoint=_bool("checkpoint", checkpoint),
        in_channels=_int("in_channels", in_channels), out_channels=_int("out_channels", out_channels),
        groups=default_groups(arch, width_tuple) if groups is None else _int("groups", groups),
    )


def default_groups(arch: Arch, widths: Sequence[int]) -> int:
    """The paper's 30 GroupNorm groups where they fit, else the largest count ≤ 30 that divides
    every normalised channel count (the coupling halves for revunet, the widths for nonewnet)."""
    channels = [w // 2 if arch == "revunet" else w for w in widths]
    return next(g for g in range(30, 0, -1) if all(c % g == 0 for c in channels if c > 0))


MAX_SPATIAL_DIMS = 3
"""Spatial axes a foreign network's input may have (1-D, 2-D or 3-D, as ``torch.nn``'s
convolutions)."""


def parse_patch(value: str | int | Sequence[int]) -> tuple[int, int, int]:
    """Parse ``128`` or ``160,192,160`` into a ``(D, H, W)`` patch size.

    Raises:
        RevprofError: not one or three positive whole numbers.
    """
    try:
        parts = parse_int_list("patch", value)
    except RevprofError:
        parts = []
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or any(p < 1 for p in parts):
        raise RevprofError(f"patch must be one size like 128 or three like 160,192,160; got {value!r}")
    if any(p > MAX_PATCH for p in parts):
        raise RevprofError(f"patch axes must be at most {MAX_PATCH} voxels; got {value!r}")
    return parts[0], parts[1], parts[2]


def parse_spatial(value: str | int | Sequence[int]) -> tuple[int, ...]:
    """The spatial size of a foreign network's input: ``86,86`` (2-D), ``160,192,160`` (3-D) or a
    sequence of 1 to :data:`MAX_SPATIAL_DIMS` sizes; one number alone (``128``, not in a sequence)
    is a 3-D cube, as for :func:`parse_patch`. revprof's own networks are 3-D: they take
    :func:`parse_patch`.

    Raises:
        RevprofError: not 1 to 3 positive whole numbers, or an axis over the size bound.
    """
    if isinstance(value, int) or (isinstance(value, str) and "," not in value):
        return parse_patch(value)
    try:
        parts = parse_int_list("patch", value)
    except RevprofError:
        parts = []
    if not 1 <= len(parts) <= MAX_SPATIAL_DIMS or any(p < 1 for p in parts):
        raise RevprofError(f"patch must be one size like 128, or 1 to {MAX_SPATIAL_DIMS} sizes like "
                           f"86,86 or 160,192,160; got {value!r}")
    if any(p > MAX_PATCH for p in parts):
        raise RevprofError(f"patch axes must be at most {MAX_PATCH} voxels; got {value!r}")
    return tuple(parts)


def parse_input_shape(value: str | Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """One sample's input shape ``C,H,W`` (or ``C,D,H,W``, ``C,L``) as ``(channels, spatial)``.

    Raises:
        RevprofError: not 2 to 4 positive whole numbers (one line naming the value).
    """
    try:
        parts = parse_int_list("input", value)
    except RevprofError:
        parts = []
    if not 2 <= len(parts) <= MAX_SPATIAL_DIMS + 1 or any(p < 1 for p in parts):
        raise RevprofError(f"input must be the channels and 1 to {MAX_SPATIAL_DIMS} spatial sizes, "
                           f"like 3,86,86 (C,H,W) or 4,128,128,128 (C,D,H,W); got {value!r}")
    if any(p > MAX_PATCH for p in parts[1:]):
        raise RevprofError(f"input sizes must be at most {MAX_PATCH} per axis; got {value!r}")
    return parts[0], tuple(parts[1:])


@overload
def validate_patch(spec: ArchSpec, patch: str | int | Sequence[int]) -> tuple[int, int, int]: ...


@overload
def validate_patch(spec: Any, patch: str | int | Sequence[int]) -> tuple[int, ...]: ...


def validate_patch(spec: Any, patch: str | int | Sequence[int]) -> tuple[int, ...]:
    """Check that every patch axis halves cleanly ``levels - 1`` times.

    An :class:`ArchSpec` takes a 3-D ``(D, H, W)`` patch (:func:`parse_patch`); any other network
    (a :class:`~revprof.nn.factory.ModelSpec`) 1 to 3 axes (:func:`parse_spatial`).

    Raises:
        RevprofError: an axis not divisible by ``2**(levels-1)``, naming it and the nearest valid sizes.
    """
    patch = parse_patch(patch) if isinstance(spec, ArchSpec) else parse_spatial(patch)
    step = 2 ** (spec.levels - 1)
    for axis, size in zip("DHW"[3 - len(patch):], patch, strict=True):
        if size % step:
            lower, upper = size // step * step, (size // step + 1) * step
            near = f"{lower} or {upper}" if lower else f"{upper}"
            raise RevprofError(f"patch {'x'.join(map(str, patch))}: axis {axis}={size} must be "
                               f"divisible by 2^(levels-1)={step} for {spec.levels} levels; try {near}")
    return patch
