"""``PYTORCH_CUDA_ALLOC_CONF`` as torch 2.13 reads it: the options the allocator model follows,
and exactly the strings torch refuses, with torch's reason.

torch 2.13 parses the string twice, with the same tokenizer (``c10::CachingAllocator::
ConfigTokenizer``: ``,`` ``:`` ``[`` ``]`` are tokens of their own, whitespace is dropped):

1. ``AcceleratorAllocatorConfig::parseArgs`` (``c10/core/AllocatorConfig.cpp``) reads the
   device-generic keys (``large_segment_size_mb`` first, in a pass of its own, then
   ``max_split_size_mb``, ``max_non_split_rounding_mb``, ``garbage_collection_threshold``,
   ``roundup_power2_divisions``, ``expandable_segments`` and the ``pinned_*`` host keys) and
   refuses a key no parser knows;
2. ``CUDAAllocatorConfig::parseArgs`` (``c10/cuda/CUDAAllocatorConfig.cpp``) reads the CUDA keys
   (``backend``, ``per_process_memory_fraction``, ``throw_on_cudamalloc_oom``,
   ``release_lock_on_cudamalloc`` and the rest) and skips the generic ones.

Both walk the tokens the way the C++ does, including its leniencies: the ``:`` and ``,``
separators are never checked (``max_split_size_mb:128:expandable_segments:True`` is accepted),
numbers are read with ``std::stoull``/``std::stod`` (``max_split_size_mb:0020`` is 20,
``max_split_size_mb:-5`` wraps around to "unlimited", ``garbage_collection_threshold:0.5abc`` is
0.5). Everything a CUDA build of torch 2.13 refuses is a :class:`~revprof.errors.RevprofError`
whose message carries torch's reason; the one thing torch accepts and revprof refuses is
``backend:cudaMallocAsync`` (a different allocator, not modelled).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from revprof.errors import RevprofError, closest

MiB = 2**20
MIN_BLOCK_SIZE = 512
"""``kMinBlockSize``: every block is a multiple of this."""
SMALL_SIZE = 1 * MiB
"""``kSmallSize``: the largest request served by the small pool."""
SMALL_BUFFER = 2 * MiB
"""``kSmallBuffer``: the small pool's segment size (and page size with expandable segments)."""
LARGE_BUFFER = 20 * MiB
"""``kLargeBuffer``: the default ``large_segment_size_mb`` (large-pool segment for requests under
``MIN_LARGE_ALLOC``, large-pool page with expandable segments, default non-split rounding)."""
MIN_LARGE_ALLOC = 10 * MiB
"""``kMinLargeAlloc``: from this size on a request gets a segment of its own size."""
ROUND_LARGE = 2 * MiB
"""``kRoundLarge``: own-size segments are rounded up to a multiple of this."""
DIVISION_INTERVALS = 16
"""``kRoundUpPowerOfTwoIntervals``: ``roundup_power2_divisions`` has one value per power of two
from 1 MiB (index 0: every size below 2 MiB) to 32 GiB (index 15: every size from 32 GiB up)."""
_SIZE_MAX = 2**64 - 1
_MAX_MB = _SIZE_MAX // MiB
"""torch caps every ``*_mb`` option at ``SIZE_MAX / 1 MiB``."""

GENERIC_KEYS = ("large_segment_size_mb", "max_split_size_mb", "max_non_split_rounding_mb",
                "garbage_collection_threshold", "roundup_power2_divisions", "expandable_segments",
                "pinned_use_background_threads", "pinned_max_round_threshold_mb",
                "pinned_max_cached_size_mb")
"""``AcceleratorAllocatorConfig::getMutableKeys()`` in torch 2.13."""
CUDA_KEYS = ("backend", "release_lock_on_cudamalloc", "pinned_use_cuda_host_register",
             "release_lock_on_hipmalloc", "pinned_use_hip_host_register",
             "graph_capture_record_stream_reuse", "pinned_reserve_segment_size_mb",
             "pinned_num_register_threads", "per_process_memory_fraction", "pinned_free_catch_all",
             "throw_on_cudamalloc_oom")
"""``CUDAAllocatorConfig::getKeys()`` in torch 2.13 (registered beside the generic ones)."""
KNOWN_KEYS = GENERIC_KEYS + CUDA_KEYS
_PINNED_MAX_REGISTER_THREADS = 128
_SPACES = frozenset(" \t\n\v\f\r")
_INDEX = "Index out of bounds in ConfigTokenizer"


class _Refused(Exception):
    """torch's parser threw: the message is torch's, ``hint`` what revprof adds."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class AllocatorConfig:
    """The allocator options the model follows (see :func:`parse_alloc_conf`); options that do not
    change device memory on one stream (``release_lock_on_cudamalloc``, ``pinned_*``,
    ``graph_capture_record_stream_reuse``) are checked by the parser and not kept.

    Attributes:
        max_split_size: bytes; blocks at least this large are never split (``None``: unlimited).
        max_non_split_rounding: bytes an oversize block may exceed a request by and still serve
            it (torch's default is ``large_segment_size``).
        expandable_segments: one growing segment per pool instead of fixed segments.
        roundup_power2_divisions: divisions per power-of-two interval (16 values, see
            :data:`DIVISION_INTERVALS`; 0 or 1: plain 512-byte rounding). An ``int`` sets all 16.
        large_segment_size: bytes of the large pool's shared segments (and expandable pages).
        garbage_collection_threshold: fraction of the allowed memory above which cached blocks
            are freed before a new segment is made (0: off; acts only with a memory fraction).
        per_process_memory_fraction: the share of the device's total memory the allocator may
            reserve (1.0: no limit beyond the device).
        throw_on_cudamalloc_oom: with a fraction below 1, a segment that would exceed it raises
            out of memory at once, without freeing cached blocks and retrying.
    """

    max_split_size: int | None = None
    max_non_split_rounding: int = LARGE_BUFFER
    expandable_segments: bool = False
    roundup_power2_divisions: tuple[int, ...] | int = 0
    large_segment_size: int = LARGE_BUFFER
    garbage_collection_threshold: float = 0.0
    per_process_memory_fraction: float = 1.0
    throw_on_cudamalloc_oom: bool = False

    def __post_init__(self) -> None:
        divisions = self.roundup_power2_divisions
        if isinstance(divisions, int):
            divisions = (divisions,) * DIVISION_INTERVALS
        if len(divisions) != DIVISION_INTERVALS:
            raise ValueError(f"roundup_power2_divisions needs {DIVISION_INTERVALS} values; got {divisions}")
        object.__setattr__(self, "roundup_power2_divisions", tuple(int(d) for d in divisions))

    def divisions(self, size: int) -> int:
        """``roundup_power2_divisions(size)``: the divisions of the interval ``size`` falls in
        (index ``floor(log2(size)) - 20``, clamped to 0..15)."""
        index = min(max(size.bit_length() - 1 - 20, 0), DIVISION_INTERVALS - 1)
        return self.roundup_power2_divisions[index]  # type: ignore[index]

    @property
    def limits_memory(self) -> bool:
        """Whether ``per_process_memory_fraction`` caps the allocator (a fraction below 1)."""
        return self.per_process_memory_fraction < 1.0

    def to_conf(self) -> str:
        """The ``PYTORCH_CUDA_ALLOC_CONF`` string for this config (``""`` for the defaults);
        :func:`parse_alloc_conf` reads it back to an equal config."""
        parts = []
        if self.large_segment_size != LARGE_BUFFER:
            parts.append(f"large_segment_size_mb:{self.large_segment_size // MiB}")
        if self.max_split_size is not None:
            parts.append(f"max_split_size_mb:{self.max_split_size // MiB}")
        if self.max_non_split_rounding != self.large_segment_size:
            parts.append(f"max_non_split_rounding_mb:{self.max_non_split_rounding // MiB}")
        if self.expandable_segments:
            parts.append("expandable_segments:True")
        divisions = self.roundup_power2_divisions
        assert isinstance(divisions, tuple)
        if len(set(divisions)) == 1 and divisions[0]:
            parts.append(f"roundup_power2_divisions:{divisions[0]}")
        elif any(divisions):
            parts.append(f"roundup_power2_divisions:{_division_list(divisions)}")
        if self.garbage_collection_threshold:
            parts.append(f"garbage_collection_threshold:{self.garbage_collection_threshold!r}")
        if self.per_process_memory_fraction != 1.0:
            parts.append(f"per_process_memory_fraction:{self.per_process_memory_fraction!r}")
        if self.throw_on_cudamalloc_oom:
            parts.append("throw_on_cudamalloc_oom:True")
        return ",".join(parts)


def _division_list(divisions: tuple[int, ...]) -> str:
    """The shortest list torch reads back as ``divisions`` (not all equal): the first boundary
    covers the leading run, ``>`` the trailing run, every interval between is explicit."""
    lead = 0
    while divisions[lead + 1] == divisions[0]:
        lead += 1
    trail = DIVISION_INTERVALS - 1
    while divisions[trail - 1] == divisions[-1]:
        trail -= 1
    listed = [f"{1 << index}:{divisions[index]}" for index in range(lead, trail)]
    return f"[{','.join(listed)},>:{divisions[-1]}]"


def parse_alloc_conf(text: str | None) -> AllocatorConfig:
    """Read a ``PYTORCH_CUDA_ALLOC_CONF`` string (``"max_split_size_mb:128,expandable_segments:True"``,
    ``"roundup_power2_divisions:[256:1,512:2,>:4]"``) as a CUDA build of torch 2.13 reads it.

    Raises:
        RevprofError: the string torch 2.13 refuses (the message gives torch's reason), or
            ``backend:cudaMallocAsync`` (accepted by torch, a different allocator: not modelled).
    """
    text = text or ""
    tokens = _tokens(text)
    try:
        values = _read_generic(tokens, device_keys=True)
        values.update(_read_cuda(tokens))
    except _Refused as refused:
        raise RevprofError(f"PYTORCH_CUDA_ALLOC_CONF {text!r} is refused by torch 2.13: "
                           f"{str(refused).strip()}{refused.hint}") from None
    if values.pop("backend", "native") != "native":
        raise RevprofError("allocator backend 'cudaMallocAsync' is not modelled; only 'native' "
                           "(the caching allocator) is")
    return AllocatorConfig(**values)  # type: ignore[arg-type]


def torch_reason(text: str, *, cuda_build: bool = True) -> str | None:
    """torch 2.13's reason for refusing ``text`` (its exception's first line), or ``None`` when it
    accepts it. ``cuda_build=False``: what a CPU build's ``torch._C._accelerator_setAllocatorSettings``
    says (the generic parser alone, with no device keys registered, so unknown keys are skipped)."""
    tokens = _tokens(text)
    try:
        _read_generic(tokens, device_keys=cuda_build)
        if cuda_build:
            _read_cuda(tokens)
    except _Refused as refused:
        return str(refused).strip()
    return None


def alloc_conf_from_environ(environ: Mapping[str, str] | None = None) -> str:
    """The allocator options a CUDA process of torch 2.13 reads from its environment:
    ``PYTORCH_CUDA_ALLOC_CONF`` when it is set (even empty), else ``PYTORCH_ALLOC_CONF`` (else ``""``).

    Raises:
        RevprofError: ``PYTORCH_HIP_ALLOC_CONF`` is set, ``PYTORCH_CUDA_ALLOC_CONF`` is not and
            the two others differ: torch 2.13 then takes the generic options from the HIP variable
            and the CUDA ones from ``PYTORCH_ALLOC_CONF``, which revprof does not model.
    """
    env = os.environ if environ is None else environ
    if "PYTORCH_CUDA_ALLOC_CONF" in env:
        return env["PYTORCH_CUDA_ALLOC_CONF"]
    generic = env.get("PYTORCH_ALLOC_CONF")
    hip = env.get("PYTORCH_HIP_ALLOC_CONF")
    if hip is not None and hip != generic:
        raise RevprofError(
            f"PYTORCH_HIP_ALLOC_CONF={hip!r} is set and PYTORCH_CUDA_ALLOC_CONF is not: torch 2.13 "
            "would read max_split_size_mb and the other generic options from it but the CUDA ones "
            f"from PYTORCH_ALLOC_CONF={generic!r}; set PYTORCH_CUDA_ALLOC_CONF to say which is meant")
    return generic or ""


# ---- the tokenizer and torch's number readers ---------------------------------------------
def _tokens(text: str) -> list[str]:
    """``ConfigTokenizer``: separators are tokens, whitespace is dropped, the rest accumulates."""
    out: list[str] = []
    buffer = ""
    for ch in text:
        if ch in ",:[]":
            if buffer:
                out.append(buffer)
                buffer = ""
            out.append(ch)
        elif ch not in _SPACES:
            buffer += ch
    if buffer:
        out.append(buffer)
    return out


_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(r"([+-]?)0[xX]((?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+))(?:[pP]([+-]?[0-9]+))?")
_SPECIAL = re.compile(r"([+-]?)(infinity|inf|nan(?:\([0-9A-Za-z_]*\))?)", re.IGNORECASE)
_MIN_NORMAL = 2.2250738585072014e-308


def _stoull(token: str, key: str) -> int:
    """``std::stoull(token)``: the longest leading integer, negatives wrapped modulo 2**64."""
    match = _INTEGER.match(token)
    if match is None:
        raise _Refused("stoull", f" (the value of {key}, {token!r}, is not a whole number)")
    digits = match.group()
    value = int(digits.lstrip("+-"))
    if value > _SIZE_MAX:
        raise _Refused("stoull", f" (the value of {key}, {token!r}, does not fit in 64 bits)")
    return (-value) % 2**64 if digits.startswith("-") else value


def _stod(token: str, key: str) -> float:
    """``std::stod(token)`` with glibc's ``strtod``: decimal, hexadecimal, ``inf`` and ``nan``
    prefixes; out of range when the result overflows or underflows inexactly."""
    special = _SPECIAL.match(token)
    if special is not None:
        value = math.inf if special.group(2).lower().startswith("inf") else math.nan
        return -value if special.group(1) == "-" else value
    hex_match = _HEX.match(token)
    if hex_match is not None:
        sign, mantissa, exponent = hex_match.groups()
        whole, _, fraction = mantissa.partition(".")
        exact = Fraction(int((whole + fraction) or "0", 16), 16 ** len(fraction))
        exact *= Fraction(2) ** int(exponent or 0)
        exact = -exact if sign == "-" else exact
    else:
        decimal = _DECIMAL.match(token)
        if decimal is None:
            raise _Refused("stod", f" (the value of {key}, {token!r}, is not a number)")
        exact = Fraction(decimal.group())
    try:
        value = float(exact)
    except OverflowError:
        value = math.inf
    if math.isinf(value) or (exact and abs(value) < _MIN_NORMAL and Fraction(value) != exact):
        raise _Refused("stod", f" (the value of {key}, {token!r}, is out of a double's range)")
    return value


class _Walk:
    """Index-checked access to the tokens, as ``ConfigTokenizer``'s methods check them."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.key = ""

    def __len__(self) -> int:
        return len(self.tokens)

    def at(self, i: int) -> str:
        if i >= len(self.tokens):
            raise _Refused(_INDEX, f" (the option {self.key!r} ends before its value)" if self.key
                           else "")
        return self.tokens[i]

    def size_t(self, i: int) -> int:
        return _stoull(self.at(i), self.key)

    def double(self, i: int) -> float:
        return _stod(self.at(i), self.key)

    def boolean(self, i: int) -> bool:
        token = self.at(i)
        if token not in ("True", "False"):
            raise _Refused(f"Expected 'True' or 'False' at index {i} in ConfigTokenizer but got "
                           f"'{token}'", f" (the value of {self.key})")
        return token == "True"

    def skip_key(self, i: int) -> int:
        """``skipKey``: past ``:`` to the value, or to the ``]`` closing a list value."""
        self.at(i + 1)
        i += 2
        if self.at(i) != "[":
            return i
        while i + 1 < len(self.tokens) and self.tokens[i + 1] != "]":
            i += 1
        if i + 1 >= len(self.tokens):
            raise _Refused("Expected closing bracket ']' in ConfigTokenizer but reached end of config")
        return i + 1

    def next_item(self, i: int) -> int:
        """After a value: step onto the (unchecked) separator when one follows, then past it."""
        return (i + 1 if i + 1 < len(self.tokens) else i) + 1


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# ---- AcceleratorAllocatorConfig::parseArgs --------------------------------------------------
def _read_generic(tokens: list[str], device_keys: bool) -> dict[str, object]:
    """The device-generic pass; ``device_keys``: a device parser is registered, as in every CUDA
    build (then an unknown key is refused; without one torch skips it)."""
    walk = _Walk(tokens)
    values: dict[str, object] = {}
    large_segment = LARGE_BUFFER
    i = 0
    while i < len(walk):  # large_segment_size_mb is read first, in a pass of its own
        if walk.tokens[i] == "large_segment_size_mb":
            walk.key = "large_segment_size_mb"
            walk.at(i + 1)
            mb = walk.size_t(i + 2)
            if mb <= MIN_LARGE_ALLOC // MiB:
                raise _Refused(f"CachingAllocator option large_segment_size_mb must be > "
                               f"{MIN_LARGE_ALLOC // MiB} MB", f" (got {mb})")
            large_segment = min(mb, _MAX_MB) * MiB
            i += 2
        i += 1
    values["large_segment_size"] = large_segment
    values["max_non_split_rounding"] = large_segment
    i = 0
    while i < len(walk):
        key = walk.key = walk.tokens[i]
        if key == "large_segment_size_mb":
            i = walk.skip_key(i)
        elif key in ("max_split_size_mb", "max_non_split_rounding_mb"):
            walk.at(i + 1)
            i += 2
            mb = walk.size_t(i)
            if mb < large_segment // MiB:
                name = "max_split_size_mb" if key == "max_split_size_mb" else "max_non_split_rounding_mb"
                raise _Refused(f"CachingAllocator option {name} too small, must be >= "
                               f"{large_segment // MiB}", f" (got {mb})")
            field = "max_split_size" if key == "max_split_size_mb" else "max_non_split_rounding"
            values[field] = min(mb, _MAX_MB) * MiB
        elif key == "garbage_collection_threshold":
            walk.at(i + 1)
            i += 2
            threshold = walk.double(i)
            if not 0 < threshold < 1.0:
                raise _Refused("garbage_collect_threshold is invalid, set it in (0.0, 1.0)",
                               f" (got {walk.tokens[i]!r})")
            values["garbage_collection_threshold"] = threshold
        elif key == "roundup_power2_divisions":
            i, values["roundup_power2_divisions"] = _read_divisions(walk, i)
        elif key in ("expandable_segments", "pinned_use_background_threads"):
            walk.at(i + 1)
            i += 2
            flag = walk.boolean(i)
            if key == "expandable_segments":
                values["expandable_segments"] = flag
        elif key in ("pinned_max_round_threshold_mb", "pinned_max_cached_size_mb"):
            walk.at(i + 1)
            i += 2
            walk.size_t(i)  # host (pinned) memory only; a larger round than cache limit only warns
        else:
            if device_keys and key not in KNOWN_KEYS:
                raise _Refused(f"Unrecognized key '{key}' in Accelerator allocator config.",
                               f"{closest(key, KNOWN_KEYS)}; known: {', '.join(KNOWN_KEYS)}")
            i = walk.skip_key(i)
        i = walk.next_item(i)
    values.setdefault("max_split_size", None)
    return values


def _read_divisions(walk: _Walk, i: int) -> tuple[int, tuple[int, ...]]:
    """``parseRoundUpPower2Divisions``: one power of two for every interval, or a list
    ``[boundary_mb:divisions, ..., >:divisions]`` (the first boundary's value also covers every
    interval below it; ``>`` covers every interval after the last boundary)."""
    walk.at(i + 1)
    i += 2
    divisions = [0] * DIVISION_INTERVALS
    if walk.at(i) != "[":
        value = walk.size_t(i)
        if not _is_power_of_two(value):
            raise _Refused("For roundups, the divisions has to be power of 2 ", f" (got {value})")
        return i, (value,) * DIVISION_INTERVALS
    last_index, first = 0, True
    while i + 1 < len(walk) and walk.tokens[i + 1] != "]":
        i += 1
        boundary_at = i
        walk.at(i + 1)
        i += 2
        value = walk.size_t(i)
        if value != 0 and not _is_power_of_two(value):
            raise _Refused("For roundups, the divisions has to be power of 2 or 0 to disable "
                           "roundup ", f" (got {value})")
        if walk.tokens[boundary_at] == ">":
            divisions[last_index + 1:] = [value] * (DIVISION_INTERVALS - last_index - 1)
        else:
            boundary = walk.size_t(boundary_at)
            if not _is_power_of_two(boundary):
                raise _Refused("For roundups, the intervals have to be power of 2 ",
                               f" (got {walk.tokens[boundary_at]!r})")
            index = min(boundary.bit_length() - 1, DIVISION_INTERVALS - 1)
            if first:
                divisions[:index] = [value] * index
                first = False
            divisions[index] = value
            last_index = index
        if walk.at(i + 1) != "]":
            i += 1  # the ',' (not checked)
    i += 1
    if i >= len(walk):
        raise _Refused("Expected closing bracket ']' in ConfigTokenizer but reached end of config")
    return i, tuple(divisions)


# ---- CUDAAllocatorConfig::parseArgs ---------------------------------------------------------
_CUDA_BOOLEANS = {"release_lock_on_cudamalloc", "release_lock_on_hipmalloc",
                  "pinned_use_cuda_host_register", "pinned_use_hip_host_register",
                  "graph_capture_record_stream_reuse", "pinned_free_catch_all",
                  "throw_on_cudamalloc_oom"}


def _read_cuda(tokens: list[str]) -> dict[str, object]:
    """The CUDA pass: its own keys; the generic ones are skipped."""
    walk = _Walk(tokens)
    values: dict[str, object] = {}
    i = 0
    while i < len(walk):
        key = walk.key = walk.tokens[i]
        if key == "backend":
            walk.at(i + 1)
            i += 2
            backend = walk.at(i)
            if backend not in ("native", "cudaMallocAsync"):
                raise _Refused("Unknown allocator backend, options are native and cudaMallocAsync",
                               f" (got {backend!r})")
            values["backend"] = backend
        elif key in _CUDA_BOOLEANS:
            walk.at(i + 1)
            i += 2
            flag = walk.boolean(i)
            if key == "throw_on_cudamalloc_oom":
                values["throw_on_cudamalloc_oom"] = flag
        elif key == "pinned_num_register_threads":
            walk.at(i + 1)
            i += 2
            threads = walk.size_t(i)
            if not _is_power_of_two(threads):
                raise _Refused(f"Number of register threads has to be power of 2, got {threads}")
            if threads > _PINNED_MAX_REGISTER_THREADS:
                raise _Refused("Number of register threads should be less than or equal to "
                               f"{_PINNED_MAX_REGISTER_THREADS}, got {threads}")
        elif key == "pinned_reserve_segment_size_mb":
            walk.at(i + 1)
            i += 2
            if walk.size_t(i) == 0:
                raise _Refused("Pinned reserve segment size has to be greater than 0")
        elif key == "per_process_memory_fraction":
            walk.at(i + 1)
            i += 2
            fraction = walk.double(i)
            if not 0.0 <= fraction <= 1.0:
                raise _Refused("per_process_memory_fraction is invalid, set it in [0.0, 1.0]",
                               f" (got {walk.tokens[i]!r})")
            values["per_process_memory_fraction"] = fraction
        else:
            if key not in KNOWN_KEYS:
                raise _Refused(f"Unrecognized key '{key}' in CUDA allocator config.",
                               f"{closest(key, KNOWN_KEYS)}; known: {', '.join(KNOWN_KEYS)}")
            i = walk.skip_key(i)
        i = walk.next_item(i)
    return values
