"""A model of PyTorch's CUDA caching allocator: what ``max_memory_reserved`` a run would reach.

The tracker (:mod:`revprof.memory.tracker`) logs every storage allocation and free in order;
:func:`replay` feeds that log through :class:`CachingAllocatorModel`, which follows the rules of
``c10/cuda/CUDACachingAllocator.cpp`` (torch 2.x, as shipped with torch 2.13):

- Every request is rounded up to a multiple of 512 bytes (``kMinBlockSize``), or, with
  ``roundup_power2_divisions:N``, to the next of N divisions between two powers of two.
- Requests of at most 1 MiB (``kSmallSize``) use the *small pool*, whose segments are 2 MiB
  (``kSmallBuffer``); larger ones use the *large pool*, whose segments are 20 MiB
  (``kLargeBuffer``) for requests under 10 MiB (``kMinLargeAlloc``) and the request rounded up to
  a multiple of 2 MiB (``kRoundLarge``) otherwise.
- A request takes the best-fitting cached free block of its pool: the smallest block at least as
  large, ties broken by the lower address (the pool is a set ordered by ``(size, address)``).
  Only when none fits is a new segment ``cudaMalloc``-ed.
- The chosen block is split (the request at its low end, the remainder back in the pool) only
  when the remainder is at least 512 bytes in the small pool, or more than 1 MiB in the large
  pool and the request is below ``max_split_size``.
- A freed block merges with free neighbours of its segment; segments are never given back to the
  driver during a step (only ``empty_cache`` or an out-of-memory retry does that).
- ``max_split_size_mb:M``: blocks of at least M MiB ("oversize") are never split, are not used
  for requests under M MiB, and are used for larger requests only if they exceed the request by
  less than ``max_non_split_rounding_mb`` (default 20 MiB).
- ``expandable_segments:True``: one growing segment per pool, mapped in pages of 2 MiB (small
  pool) or 20 MiB (large pool). A request that finds no free block maps just enough pages at the
  end of the segment, merging with a free block there; every split keeps a remainder of at least
  512 bytes.

What the model leaves out (stated in every result that uses it): the device has no capacity
limit here, so the out-of-memory path that frees cached blocks and retries is not taken (a run
near the card's limit may fit in slightly less than the predicted peak, never more); a single
stream; ``garbage_collection_threshold`` (only active with a memory fraction set); CUDA graphs'
private pools; and allocations the tracker does not see (cuDNN workspaces, kernel temporaries).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from revprof.errors import RevprofError, closest

MiB = 2**20
MIN_BLOCK_SIZE = 512
"""``kMinBlockSize``: every block is a multiple of this."""
SMALL_SIZE = 1 * MiB
"""``kSmallSize``: the largest request served by the small pool."""
SMALL_BUFFER = 2 * MiB
"""``kSmallBuffer``: the small pool's segment size (and page size with expandable segments)."""
LARGE_BUFFER = 20 * MiB
"""``kLargeBuffer``: the large pool's segment size for requests under ``MIN_LARGE_ALLOC``."""
MIN_LARGE_ALLOC = 10 * MiB
"""``kMinLargeAlloc``: from this size on a request gets a segment of its own size."""
ROUND_LARGE = 2 * MiB
"""``kRoundLarge``: own-size segments are rounded up to a multiple of this."""
_UNLIMITED = 2**63 - 1
_VIRTUAL_SIZE = 2**50
"""Address space reserved for an expandable segment (torch reserves ~1.125 x device memory)."""


@dataclass(frozen=True)
class AllocatorConfig:
    """The ``PYTORCH_CUDA_ALLOC_CONF`` options the model follows (see :func:`parse_alloc_conf`).

    Attributes:
        max_split_size: bytes; blocks at least this large are never split (``None``: unlimited).
        max_non_split_rounding: bytes an oversize block may exceed a request by and still serve it.
        expandable_segments: one growing segment per pool instead of fixed segments.
        roundup_power2_divisions: round requests to N divisions between powers of two (0: off).
    """

    max_split_size: int | None = None
    max_non_split_rounding: int = LARGE_BUFFER
    expandable_segments: bool = False
    roundup_power2_divisions: int = 0

    def to_conf(self) -> str:
        """The ``PYTORCH_CUDA_ALLOC_CONF`` string for this config (``""`` for the defaults)."""
        parts = []
        if self.max_split_size is not None:
            parts.append(f"max_split_size_mb:{self.max_split_size // MiB}")
        if self.max_non_split_rounding != LARGE_BUFFER:
            parts.append(f"max_non_split_rounding_mb:{self.max_non_split_rounding // MiB}")
        if self.expandable_segments:
            parts.append("expandable_segments:True")
        if self.roundup_power2_divisions:
            parts.append(f"roundup_power2_divisions:{self.roundup_power2_divisions}")
        return ",".join(parts)


_NO_EFFECT = {"garbage_collection_threshold", "release_lock_on_cudamalloc", "pinned_use_cuda_host_register",
              "pinned_num_register_threads", "pinned_use_background_threads", "pinned_reserve_segment_size_mb",
              "graph_capture_record_stream_reuse"}
"""Options accepted but without effect on a one-stream step on a device without a capacity limit."""
_KNOWN = ("backend", "max_split_size_mb", "max_non_split_rounding_mb", "expandable_segments",
          "roundup_power2_divisions", *sorted(_NO_EFFECT))


def parse_alloc_conf(text: str | None) -> AllocatorConfig:
    """Parse a ``PYTORCH_CUDA_ALLOC_CONF`` string such as ``"max_split_size_mb:128"`` or
    ``"expandable_segments:True"`` (comma-separated ``key:value`` pairs, as torch reads them).

    Raises:
        RevprofError: an unknown key, a malformed or out-of-range value, or an option the model
            does not follow (``backend:cudaMallocAsync``, per-size ``roundup_power2_divisions``).
    """
    values: dict[str, object] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise RevprofError(f"allocator option {item!r} must be key:value, e.g. max_split_size_mb:128")
        if key not in _KNOWN:
            raise RevprofError(f"unknown allocator option {key!r}{closest(key, _KNOWN)}; "
                               f"known: {', '.join(_KNOWN)}")
        if key == "backend":
            if value != "native":
                raise RevprofError(f"allocator backend {value!r} is not modelled; only 'native' "
                                   "(the caching allocator) is")
        elif key in ("max_split_size_mb", "max_non_split_rounding_mb"):
            if not value.isdigit():
                raise RevprofError(f"{key} must be a whole number of MiB; got {value!r}")
            mb = int(value)
            if key == "max_split_size_mb" and mb <= LARGE_BUFFER // MiB:
                raise RevprofError(f"max_split_size_mb must be more than {LARGE_BUFFER // MiB} "
                                   f"(as torch requires); got {mb}")
            values[key] = mb * MiB
        elif key == "expandable_segments":
            if value not in ("True", "False"):
                raise RevprofError(f"expandable_segments must be True or False; got {value!r}")
            values[key] = value == "True"
        elif key == "roundup_power2_divisions":
            if not value.isdigit():
                raise RevprofError("roundup_power2_divisions is modelled as one number (a power of "
                                   f"two, e.g. 4); got {value!r}")
            n = int(value)
            if n != 0 and n & (n - 1):
                raise RevprofError(f"roundup_power2_divisions must be a power of two; got {n}")
            values[key] = n
    return AllocatorConfig(
        max_split_size=values.get("max_split_size_mb"),  # type: ignore[arg-type]
        max_non_split_rounding=values.get("max_non_split_rounding_mb", LARGE_BUFFER),  # type: ignore[arg-type]
        expandable_segments=bool(values.get("expandable_segments", False)),
        roundup_power2_divisions=int(values.get("roundup_power2_divisions", 0)),  # type: ignore[arg-type]
    )


@dataclass(eq=False)
class Block:
    """A piece of a segment: allocated, cached free, or (expandable segments) not yet mapped."""

    address: int
    size: int
    pool: Literal["small", "large"]
    segment: int
    allocated: bool = False
    mapped: bool = True
    requested: int = 0
    prev: Block | None = None
    next: Block | None = None
    tag: int | None = None
    """The caller's id of the allocation (an event id of the tracker's log)."""


@dataclass
class Segment:
    """One ``cudaMalloc`` (or one expandable segment); ``size`` counts mapped bytes only."""

    index: int
    address: int
    size: int
    pool: Literal["small", "large"]
    expandable: bool
    head: Block


def round_size(size: int, config: AllocatorConfig) -> int:
    """The allocator's ``round_size``: 512-byte multiples, or power-of-two divisions."""
    if size < MIN_BLOCK_SIZE:
        return MIN_BLOCK_SIZE
    divisions = config.roundup_power2_divisions
    if divisions > 0 and size > MIN_BLOCK_SIZE * divisions:
        if size & (size - 1) == 0:
            return size
        floor = 1 << (size.bit_length() - 1)
        step = floor >> (divisions.bit_length() - 1)
        if step == 0:
            return floor << 1
        base = size & ~(step - 1)
        return size if base == size else base + step
    return -(-size // MIN_BLOCK_SIZE) * MIN_BLOCK_SIZE


def allocation_size(size: int) -> int:
    """The allocator's ``get_allocation_size``: the segment a (rounded) request ``cudaMalloc``-s."""
    if size <= SMALL_SIZE:
        return SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return -(-size // ROUND_LARGE) * ROUND_LARGE


class _Pool:
    """Cached free, mapped blocks ordered by ``(size, address)``, and unmapped ones by address."""

    def __init__(self, name: Literal["small", "large"]) -> None:
        self.name = name
        self.keys: list[tuple[int, int]] = []
        self.blocks: dict[tuple[int, int], Block] = {}
        self.unmapped: list[tuple[int, Block]] = []

    def insert(self, block: Block) -> None:
        key = (block.size, block.address)
        bisect.insort(self.keys, key)
        self.blocks[key] = block

    def remove(self, block: Block) -> None:
        key = (block.size, block.address)
        del self.blocks[key]
        del self.keys[bisect.bisect_left(self.keys, key)]


class CachingAllocatorModel:
    """Replays ``malloc``/``free`` calls the way ``CUDACachingAllocator`` serves them.

    Attributes:
        allocated: bytes in allocated blocks now (``memory_allocated``: block sizes).
        reserved: bytes in segments now (``memory_reserved``).
        max_allocated, max_reserved: their peaks so far.
        segments: every segment made, in order.
    """

    def __init__(self, config: AllocatorConfig | None = None) -> None:
        self.config = config or AllocatorConfig()
        self.pools = {"small": _Pool("small"), "large": _Pool("large")}
        self.segments: list[Segment] = []
        self.allocated = 0
        self.reserved = 0
        self.max_allocated = 0
        self.max_reserved = 0
        self.active: dict[int, Block] = {}
        self.trace: list[tuple[str, int, int]] = []
        """``(action, address, size)`` of every step, in the actions of torch's memory history:
        ``segment_alloc``, ``segment_map``, ``alloc``, ``free_completed``."""
        self._next_address = 0x7F0000000000
        self._split_limit = self.config.max_split_size or _UNLIMITED

    # ---- public calls -----------------------------------------------------------------
    def malloc(self, nbytes: int, tag: int | None = None) -> Block:
        """Serve a request of ``nbytes`` (> 0); returns the allocated block."""
        if nbytes <= 0:
            raise ValueError("the caching allocator serves only non-empty requests")
        size = round_size(nbytes, self.config)
        pool = self.pools["small" if size <= SMALL_SIZE else "large"]
        block = self._free_block(pool, size)
        if block is None:
            block = self._expand(pool, size) if self.config.expandable_segments else self._new_segment(pool, size)
        if self._should_split(block, size):
            block = self._split(block, size, pool)
        block.allocated, block.requested, block.tag = True, nbytes, tag
        self.active[block.address] = block
        self.allocated += block.size
        self.max_allocated = max(self.max_allocated, self.allocated)
        self.trace.append(("alloc", block.address, block.size))
        return block

    def free(self, block: Block) -> None:
        """Return an allocated block to its pool, merged with free neighbours."""
        if not block.allocated:
            raise ValueError("block is not allocated")
        del self.active[block.address]
        block.allocated, block.tag = False, None
        self.allocated -= block.size
        self.trace.append(("free_completed", block.address, block.size))
        pool = self.pools[block.pool]
        for other in (block.prev, block.next):
            self._merge(block, other, pool)
        pool.insert(block)

    # ---- the allocator's rules --------------------------------------------------------
    def _free_block(self, pool: _Pool, size: int) -> Block | None:
        """``get_free_block``: the smallest cached block that fits, lower address first."""
        index = bisect.bisect_left(pool.keys, (size, 0))
        if index == len(pool.keys):
            return None
        block = pool.blocks[pool.keys[index]]
        if self.config.expandable_segments:
            # the block at the mapped end of a segment counts as large as it can grow, so a
            # smaller-growable block further up the order is preferred
            def growable(b: Block) -> int:
                return b.size + (b.next.size if b.next is not None and not b.next.mapped else 0)

            while index + 1 < len(pool.keys):
                following = pool.blocks[pool.keys[index + 1]]
                if growable(following) >= growable(block):
                    break
                index, block = index + 1, following
        if size < self._split_limit and block.size >= self._split_limit:
            return None  # never hand an oversize block to a smaller request
        if size >= self._split_limit and block.size >= size + self.config.max_non_split_rounding:
            return None  # an oversize block may exceed the request only a little
        pool.remove(block)
        return block

    def _should_split(self, block: Block, size: int) -> bool:
        remaining = block.size - size
        if block.pool == "small" or self.config.expandable_segments:
            return remaining >= MIN_BLOCK_SIZE
        return size < self._split_limit and remaining > SMALL_SIZE

    def _split(self, block: Block, size: int, pool: _Pool) -> Block:
        """``alloc_found_block``: the request takes the low end, the rest goes back to the pool."""
        front = Block(block.address, size, block.pool, block.segment, prev=block.prev, next=block)
        if block.prev is not None:
            block.prev.next = front
        else:
            self.segments[block.segment].head = front
        block.prev = front
        block.address += size
        block.size -= size
        pool.insert(block)
        return front

    def _merge(self, dst: Block, src: Block | None, pool: _Pool) -> None:
        """``try_merge_blocks``: absorb a free neighbour of the same mapping state into ``dst``."""
        if src is None or src.allocated or src.mapped != dst.mapped:
            return
        if src.mapped:
            pool.remove(src)
        else:
            pool.unmapped.remove((src.address, src))
        if src is dst.prev:
            dst.address, dst.prev = src.address, src.prev
            if dst.prev is not None:
                dst.prev.next = dst
            else:
                self.segments[dst.segment].head = dst
        else:
            dst.next = src.next
            if dst.next is not None:
                dst.next.prev = dst
        dst.size += src.size

    def _new_segment(self, pool: _Pool, size: int) -> Block:
        """``alloc_block``: ``cudaMalloc`` a segment of ``allocation_size(size)``."""
        total = allocation_size(size)
        address = self._take_addresses(total)
        block = Block(address, total, pool.name, len(self.segments))
        self.segments.append(Segment(len(self.segments), address, total, pool.name, False, block))
        self._reserve(total)
        self.trace.append(("segment_alloc", address, total))
        return block

    def _expand(self, pool: _Pool, size: int) -> Block:
        """``try_allocate_expandable_block``: map pages at the end of the pool's segment."""
        candidate = self._expandable_candidate(pool, size)
        if not candidate.mapped:
            candidate = self._map(candidate, min(candidate.size, size), pool)
        while candidate.size < size:
            following = candidate.next
            assert following is not None and not following.mapped
            candidate = self._map(following, min(size - candidate.size, following.size), pool)
        pool.remove(candidate)
        return candidate

    def _expandable_candidate(self, pool: _Pool, size: int) -> Block:
        """``find_expandable_block``: the lowest unmapped range (with a free block just before
        it) with room for ``size``, else a new expandable segment."""
        for _, unmapped in pool.unmapped:
            start = unmapped.prev if unmapped.prev is not None and not unmapped.prev.allocated else unmapped
            room, b = 0, start
            while room < size and b is not None and not b.allocated:
                room, b = room + b.size, b.next
            if room >= size:
                return start
        address = self._take_addresses(_VIRTUAL_SIZE)
        block = Block(address, _VIRTUAL_SIZE, pool.name, len(self.segments), mapped=False)
        self.segments.append(Segment(len(self.segments), address, 0, pool.name, True, block))
        bisect.insort(pool.unmapped, (address, block), key=lambda item: item[0])
        return block

    def _map(self, block: Block, size: int, pool: _Pool) -> Block:
        """``map_block``: map whole pages covering ``size`` bytes at the start of ``block``."""
        page = SMALL_BUFFER if pool.name == "small" else LARGE_BUFFER
        mapped = min(block.size, -(-size // page) * page)
        pool.unmapped.remove((block.address, block))
        if mapped < block.size:
            rest = Block(block.address + mapped, block.size - mapped, block.pool, block.segment,
                         mapped=False, prev=block, next=block.next)
            if block.next is not None:
                block.next.prev = rest
            block.next = rest
            block.size = mapped
            bisect.insort(pool.unmapped, (rest.address, rest), key=lambda item: item[0])
        block.mapped = True
        self._merge(block, block.prev, pool)
        self._merge(block, block.next, pool)
        pool.insert(block)
        self.segments[block.segment].size += mapped
        self._reserve(mapped)
        self.trace.append(("segment_map", block.address, mapped))
        return block

    def _reserve(self, nbytes: int) -> None:
        self.reserved += nbytes
        self.max_reserved = max(self.max_reserved, self.reserved)

    def _take_addresses(self, nbytes: int) -> int:
        address = self._next_address
        self._next_address += -(-nbytes // SMALL_BUFFER) * SMALL_BUFFER + SMALL_BUFFER
        return address

    # ---- state ------------------------------------------------------------------------
    def blocks(self, segment: Segment) -> list[Block]:
        """The mapped blocks of ``segment`` in address order."""
        out, b = [], segment.head
        while b is not None:
            if b.mapped:
                out.append(b)
            b = b.next
        return out

    def largest_free_block(self) -> int:
        """Bytes of the largest cached free block (0 when none)."""
        return max((k[0] for pool in self.pools.values() for k in pool.keys[-1:]), default=0)


@dataclass(frozen=True)
class AllocatorPrediction:
    """What the model predicts for one replayed event log.

    Attributes:
        max_reserved_bytes: predicted ``torch.cuda.max_memory_reserved``.
        max_allocated_bytes: predicted ``max_memory_allocated`` (block sizes: a block left unsplit
            counts whole, so this can exceed the tracker's 512-byte-rounded peak).
        largest_segment_bytes: the largest segment.
        segments: segments made.
        reserved_at_peak, allocated_at_peak: both at the moment allocated bytes peaked.
        fragmentation_at_peak: ``1 - allocated/reserved`` at that moment: the share of reserved
            memory cached but unused when the tensors need the most.
        config: the ``PYTORCH_CUDA_ALLOC_CONF`` string modelled (``""``: defaults).
    """

    max_reserved_bytes: int
    max_allocated_bytes: int
    largest_segment_bytes: int
    segments: int
    reserved_at_peak: int
    allocated_at_peak: int
    fragmentation_at_peak: float
    config: str = ""
    leaves_out: str = field(default=(
        "cuDNN workspaces and kernel temporaries the tracker does not see; the out-of-memory "
        "retry that frees cached blocks (a run near the limit may need slightly less)"))

    def to_dict(self) -> dict[str, object]:
        return dict(vars(self))


Event = tuple[str, int, int]
"""``("alloc", id, nbytes)`` or ``("free", id, 0)``, in the order they happened."""


def replay(events: Iterable[Event], config: AllocatorConfig | None = None,
           model: CachingAllocatorModel | None = None) -> AllocatorPrediction:
    """Feed an allocation log through the allocator model and summarise it.

    Zero-byte allocations are skipped (torch serves them without the allocator); a ``free`` of an
    id never allocated is ignored (e.g. a storage created before the log began).

    Args:
        events: ``("alloc", id, nbytes)`` / ``("free", id, 0)`` tuples in order.
        config: allocator options (default: torch's defaults).
        model: a fresh model to use (to inspect its segments or trace afterwards).
    """
    model = model or CachingAllocatorModel(config)
    live: dict[int, Block] = {}
    at_peak = (0, 0)
    for action, key, nbytes in events:
        if action == "alloc":
            if nbytes > 0:
                live[key] = model.malloc(nbytes, tag=key)
                if model.allocated > at_peak[1]:
                    at_peak = (model.reserved, model.allocated)
        elif action == "free":
            block = live.pop(key, None)
            if block is not None:
                model.free(block)
        else:
            raise ValueError(f"unknown event action {action!r}")
    reserved, allocated = at_peak
    return AllocatorPrediction(
        max_reserved_bytes=model.max_reserved, max_allocated_bytes=model.max_allocated,
        largest_segment_bytes=max((s.size for s in model.segments), default=0),
        segments=len(model.segments), reserved_at_peak=reserved, allocated_at_peak=allocated,
        fragmentation_at_peak=(1 - allocated / reserved) if reserved else 0.0,
        config=model.config.to_conf())


def replay_sizes(sizes: Sequence[int], config: AllocatorConfig | None = None) -> AllocatorPrediction:
    """Shorthand for tests: positive entries allocate, ``-k`` frees the k-th allocation (1-based)."""
    events: list[Event] = []
    count = 0
    for s in sizes:
        if s > 0:
            count += 1
            events.append(("alloc", count, s))
        else:
            events.append(("free", -s, 0))
    return replay(events, config)


def reserved_timeline(log: Sequence[tuple[str, int, int, str, int]], length: int,
                      config: AllocatorConfig | None = None) -> list[int]:
    """Reserved bytes after each of ``length`` timeline entries, replaying a tracker log
    (``MemoryReport.allocation_log``: events of index ``i`` happen before entry ``i``)."""
    model = CachingAllocatorModel(config)
    live: dict[int, Block] = {}
    out: list[int] = []
    for action, key, nbytes, _, index in log:
        while len(out) < min(index, length):
            out.append(model.reserved)
        if action == "alloc" and nbytes > 0:
            live[key] = model.malloc(nbytes, tag=key)
        elif action == "free" and key in live:
            model.free(live.pop(key))
    while len(out) < length:
        out.append(model.reserved)
    return out
