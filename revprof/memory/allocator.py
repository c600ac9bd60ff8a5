"""A model of PyTorch's CUDA caching allocator: what ``max_memory_reserved`` a run would reach,
and, on a device of a given capacity, whether it runs out of memory.

The tracker (:mod:`revprof.memory.tracker`) logs every storage allocation and free in order;
:func:`replay` feeds that log through :class:`CachingAllocatorModel`, which follows the rules of
``c10/cuda/CUDACachingAllocator.cpp`` as torch 2.13 ships it (options: :mod:`revprof.memory.alloc_conf`):

- Every request is rounded up to a multiple of 512 bytes (``kMinBlockSize``), or, when
  ``roundup_power2_divisions`` gives the request's power-of-two interval N > 1 divisions and the
  request exceeds 512 * N bytes, to the next of N divisions between two powers of two.
- Requests of at most 1 MiB (``kSmallSize``) use the *small pool*, whose segments are 2 MiB
  (``kSmallBuffer``); larger ones use the *large pool*, whose segments are
  ``large_segment_size_mb`` (20 MiB) for requests under 10 MiB (``kMinLargeAlloc``) and the
  request rounded up to a multiple of 2 MiB (``kRoundLarge``) otherwise.
- A request takes the best-fitting cached free block of its pool: the smallest block at least as
  large, ties broken by the lower address (the pool is a set ordered by ``(size, address)``).
  Only when none fits is a new segment ``cudaMalloc``-ed.
- The chosen block is split (the request at its low end, the remainder back in the pool) only
  when the remainder is at least 512 bytes in the small pool, or more than 1 MiB in the large
  pool and the request is below ``max_split_size``.
- A freed block merges with free neighbours of its segment; segments are never given back to the
  driver unless a segment does not fit the device (below) or ``empty_cache`` is called.
- ``max_split_size_mb:M``: blocks of at least M MiB ("oversize") are never split, are not used
  for requests under M MiB, and are used for larger requests only if they exceed the request by
  less than ``max_non_split_rounding_mb`` (default ``large_segment_size_mb``).
- ``expandable_segments:True``: one growing segment per pool, mapped in pages of 2 MiB (small
  pool) or ``large_segment_size_mb`` (large pool). A request that finds no free block maps just
  enough pages at the end of the segment, merging with a free block there; every split keeps a
  remainder of at least 512 bytes.
- With a device capacity (and ``per_process_memory_fraction``), a segment that does not fit
  takes torch's out-of-memory path: garbage collection first (``garbage_collection_threshold``,
  with a fraction only), then ``release_available_cached_blocks`` (with ``max_split_size_mb``:
  the smallest oversize cached segment large enough, else oversize ones from the largest down),
  then ``release_cached_blocks`` (every cached segment that is one free block, and every whole
  free page of an expandable segment) and one retry; if that fails too, out of memory
  (``throw_on_cudamalloc_oom`` under a fraction: at once, without freeing anything).

What the model leaves out (stated in every result that uses it): a single stream; CUDA graphs'
private pools and memory pools; allocations the tracker does not see (cuDNN workspaces, kernel
temporaries); and, without a capacity, any device limit (then the out-of-memory path is not
taken: a run near the card's limit may fit in slightly less than the predicted peak).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from revprof.errors import RevprofError
from revprof.memory.alloc_conf import (
    LARGE_BUFFER, MIN_BLOCK_SIZE, MIN_LARGE_ALLOC, ROUND_LARGE, SMALL_BUFFER, SMALL_SIZE, MiB,
    AllocatorConfig, alloc_conf_from_environ, parse_alloc_conf,
)
from revprof.memory.cards import DeviceCapacity

__all__ = ["LARGE_BUFFER", "MIN_BLOCK_SIZE", "MIN_LARGE_ALLOC", "ROUND_LARGE", "SMALL_BUFFER",
           "SMALL_SIZE", "MiB", "AllocatorConfig", "AllocatorOutOfMemory", "AllocatorPrediction",
           "Block", "CachingAllocatorModel", "Segment", "alloc_conf_from_environ", "allocation_size",
           "parse_alloc_conf", "replay", "replay_sizes", "reserved_timeline", "round_size"]

_UNLIMITED = 2**63 - 1
_VIRTUAL_SIZE = 2**50
"""Address space reserved for an expandable segment (torch reserves ~1.125 x device memory)."""


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
    gc_base: int = 0
    """The pool's free-block search count when the block entered the pool (its age's origin)."""


@dataclass
class Segment:
    """One ``cudaMalloc`` (or one expandable segment); ``size`` counts mapped bytes only."""

    index: int
    address: int
    size: int
    pool: Literal["small", "large"]
    expandable: bool
    head: Block
    released: bool = False
    """Given back to the driver (``cudaFree``, or every page of an expandable segment unmapped)."""


class AllocatorOutOfMemory(Exception):
    """The device ran out: torch raises ``torch.OutOfMemoryError`` for this request.

    Attributes:
        requested: bytes the caller asked for.
        rounded: the request after ``round_size``.
        allocation: the segment torch tried to get (``get_allocation_size``; its message's
            "Tried to allocate").
        reserved, allocated: the allocator's reserved and allocated bytes at that moment.
        rejected: refused before any ``cudaMalloc`` by ``throw_on_cudamalloc_oom`` (no retry).
    """

    def __init__(self, requested: int, rounded: int, allocation: int, reserved: int, allocated: int,
                 rejected: bool = False) -> None:
        super().__init__(f"CUDA out of memory. Tried to allocate {allocation} B (request of "
                         f"{requested} B) with {reserved} B reserved, {allocated} B allocated")
        self.requested, self.rounded, self.allocation = requested, rounded, allocation
        self.reserved, self.allocated, self.rejected = reserved, allocated, rejected


def round_size(size: int, config: AllocatorConfig) -> int:
    """The allocator's ``round_size``: 512-byte multiples, or the next of N divisions between two
    powers of two when the size's interval has N > 1 divisions and ``size > 512 * N``."""
    if size < MIN_BLOCK_SIZE:
        return MIN_BLOCK_SIZE
    divisions = config.divisions(size)
    if divisions > 1 and size > MIN_BLOCK_SIZE * divisions:
        if size & (size - 1) == 0:
            return size
        floor = 1 << (size.bit_length() - 1)
        step = floor >> (divisions.bit_length() - 1)
        if step == 0:
            return floor << 1
        base = size & ~(step - 1)
        return size if base == size else base + step
    return -(-size // MIN_BLOCK_SIZE) * MIN_BLOCK_SIZE


def allocation_size(size: int, config: AllocatorConfig | None = None) -> int:
    """The allocator's ``get_allocation_size``: the segment a (rounded) request ``cudaMalloc``-s."""
    if size <= SMALL_SIZE:
        return SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return (config or AllocatorConfig()).large_segment_size
    return -(-size // ROUND_LARGE) * ROUND_LARGE


class _Pool:
    """Cached free, mapped blocks ordered by ``(size, address)``, and unmapped ones by address."""

    def __init__(self, name: Literal["small", "large"]) -> None:
        self.name = name
        self.keys: list[tuple[int, int]] = []
        self.blocks: dict[tuple[int, int], Block] = {}
        self.unmapped: list[tuple[int, Block]] = []
        self.searches = 0
        """``get_free_blocks_call_count``: free-block searches (counted only with garbage collection)."""

    def insert(self, block: Block) -> None:
        key = (block.size, block.address)
        bisect.insort(self.keys, key)
        self.blocks[key] = block
        block.gc_base = self.searches

    def remove(self, block: Block) -> None:
        key = (block.size, block.address)
        del self.blocks[key]
        del self.keys[bisect.bisect_left(self.keys, key)]

    def add_unmapped(self, block: Block) -> None:
        bisect.insort(self.unmapped, (block.address, block), key=lambda item: item[0])


def _capacity_of(capacity: DeviceCapacity | int | None) -> DeviceCapacity | None:
    if capacity is None or isinstance(capacity, DeviceCapacity):
        return capacity
    return DeviceCapacity(int(capacity))


class CachingAllocatorModel:
    """Replays ``malloc``/``free`` calls the way ``CUDACachingAllocator`` serves them.

    Args:
        config: allocator options (default: torch's defaults).
        capacity: the device's memory (:class:`~revprof.memory.cards.DeviceCapacity`, or bytes
            taken as both its total and what the allocator can use), or ``None`` for a device
            without a limit. With a capacity, a segment that does not fit (in
            ``capacity.usable``, or in ``per_process_memory_fraction * capacity.total_bytes``) takes
            torch's out-of-memory path: garbage collection (with a threshold and a fraction), then
            ``release_available_cached_blocks``, then ``release_cached_blocks`` (every unused
            cached segment and free expandable page) and a retry, then
            :class:`AllocatorOutOfMemory`.

    Attributes:
        allocated: bytes in allocated blocks now (``memory_allocated``: block sizes).
        reserved: bytes in segments now (``memory_reserved``).
        max_allocated, max_reserved: their peaks so far.
        segments: every segment made, in order (released ones stay, marked ``released``).
        largest_segment: the largest a segment has been.
        alloc_retries: requests that freed the cache and retried (``num_alloc_retries``).
        released_bytes: bytes given back to the driver by garbage collection and the retries.

    Raises:
        RevprofError: ``per_process_memory_fraction`` below 1 without a capacity (its share of
            what?).
    """

    def __init__(self, config: AllocatorConfig | None = None,
                 capacity: DeviceCapacity | int | None = None) -> None:
        self.config = config or AllocatorConfig()
        self.capacity = _capacity_of(capacity)
        if self.config.limits_memory and self.capacity is None:
            raise RevprofError(
                f"per_process_memory_fraction:{self.config.per_process_memory_fraction} limits the "
                "allocator to a share of the device's total memory: give the device's capacity")
        self.pools = {"small": _Pool("small"), "large": _Pool("large")}
        self.segments: list[Segment] = []
        self.allocated = 0
        self.reserved = 0
        self.max_allocated = 0
        self.max_reserved = 0
        self.largest_segment = 0
        self.alloc_retries = 0
        self.released_bytes = 0
        self.active: dict[int, Block] = {}
        self.trace: list[tuple[str, int, int]] = []
        """``(action, address, size)`` of every step, in the actions of torch's memory history:
        ``segment_alloc``, ``segment_map``, ``alloc``, ``free_completed``, ``segment_free``,
        ``segment_unmap``."""
        self._next_address = 0x7F0000000000
        self._split_limit = self.config.max_split_size or _UNLIMITED
        self.usable = self.capacity.usable if self.capacity is not None else None
        self.allowed = (self.capacity.allowed_bytes(self.config.per_process_memory_fraction)
                        if self.capacity is not None else None)
        """``allowed_memory_maximum``: the fraction's limit (``None``: none)."""
        self._collects = self.allowed is not None and self.config.garbage_collection_threshold > 0

    # ---- public calls -----------------------------------------------------------------
    def malloc(self, nbytes: int, tag: int | None = None) -> Block:
        """Serve a request of ``nbytes`` (> 0); returns the allocated block.

        Raises:
            AllocatorOutOfMemory: the device (with a capacity) cannot hold the segment it needs.
        """
        if nbytes <= 0:
            raise ValueError("the caching allocator serves only non-empty requests")
        size = round_size(nbytes, self.config)
        pool = self.pools["small" if size <= SMALL_SIZE else "large"]
        block = self._free_block(pool, size)
        if block is None:
            block = self._get_segment(pool, size, nbytes)
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
        if self._collects:
            pool.searches += 1
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

    def _get_segment(self, pool: _Pool, size: int, nbytes: int) -> Block:
        """``malloc`` after a miss: garbage collection, ``alloc_block``, then the two retries."""
        allocation = allocation_size(size, self.config)
        if self._collects:
            self._collect_garbage()
        block = self._alloc_block(pool, size, allocation, nbytes)
        if block is None and self._release_available_cached_blocks(pool, size):
            block = self._alloc_block(pool, size, allocation, nbytes)
        if block is None:
            self._release_cached_blocks()
            self.alloc_retries += 1
            block = self._alloc_block(pool, size, allocation, nbytes)
        if block is None:
            raise AllocatorOutOfMemory(nbytes, size, allocation, self.reserved, self.allocated)
        return block

    def _alloc_block(self, pool: _Pool, size: int, allocation: int, nbytes: int) -> Block | None:
        """``alloc_block``: a new segment (or mapped pages), ``None`` when the device is full."""
        if self.allowed is not None and self.reserved + allocation > self.allowed:
            if self.config.throw_on_cudamalloc_oom:
                raise AllocatorOutOfMemory(nbytes, size, allocation, self.reserved, self.allocated,
                                           rejected=True)
            return None
        if self.config.expandable_segments:
            return self._expand(pool, size)
        return self._new_segment(pool, allocation)

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

    def _new_segment(self, pool: _Pool, total: int) -> Block | None:
        """``cudaMalloc`` a segment of ``total`` bytes; ``None`` when it does not fit the device."""
        if self.usable is not None and self.reserved + total > self.usable:
            return None
        address = self._take_addresses(total)
        block = Block(address, total, pool.name, len(self.segments))
        self.segments.append(Segment(len(self.segments), address, total, pool.name, False, block))
        self._reserve(total)
        self.largest_segment = max(self.largest_segment, total)
        self.trace.append(("segment_alloc", address, total))
        return block

    def _expand(self, pool: _Pool, size: int) -> Block | None:
        """``try_allocate_expandable_block``: map pages at the end of the pool's segment
        (``None`` when the pages do not fit the device; pages mapped before stay mapped)."""
        candidate: Block | None = self._expandable_candidate(pool, size)
        assert candidate is not None
        if not candidate.mapped:
            candidate = self._map(candidate, min(candidate.size, size), pool)
        while candidate is not None and candidate.size < size:
            following = candidate.next
            assert following is not None and not following.mapped
            candidate = self._map(following, min(size - candidate.size, following.size), pool)
        if candidate is not None:
            pool.remove(candidate)
        return candidate

    def _expandable_candidate(self, pool: _Pool, size: int) -> Block:
        """``find_expandable_block``: the lowest unmapped range (with a free block just before
        it) with room for ``size``, else a new expandable segment."""
        for _, unmapped in pool.unmapped:
            start = unmapped.prev if unmapped.prev is not None and not unmapped.prev.allocated else unmapped
            room, block = 0, start  # type: tuple[int, Block | None]
            while room < size and block is not None and not block.allocated:
                room, block = room + block.size, block.next
            if room >= size:
                return start
        address = self._take_addresses(_VIRTUAL_SIZE)
        block = Block(address, _VIRTUAL_SIZE, pool.name, len(self.segments), mapped=False)
        self.segments.append(Segment(len(self.segments), address, 0, pool.name, True, block))
        pool.add_unmapped(block)
        return block

    def _page(self, pool: _Pool) -> int:
        """The expandable segments' page: 2 MiB (small pool) or ``large_segment_size``."""
        return SMALL_BUFFER if pool.name == "small" else self.config.large_segment_size

    def _map(self, block: Block, size: int, pool: _Pool) -> Block | None:
        """``map_block``: map whole pages covering ``size`` bytes at the start of ``block``
        (``None``, nothing mapped, when they do not fit the device)."""
        page = self._page(pool)
        mapped = min(block.size, -(-size // page) * page)
        if self.usable is not None and self.reserved + mapped > self.usable:
            return None
        pool.unmapped.remove((block.address, block))
        if mapped < block.size:
            rest = Block(block.address + mapped, block.size - mapped, block.pool, block.segment,
                         mapped=False, prev=block, next=block.next)
            if block.next is not None:
                block.next.prev = rest
            block.next = rest
            block.size = mapped
            pool.add_unmapped(rest)
        block.mapped = True
        self._merge(block, block.prev, pool)
        self._merge(block, block.next, pool)
        pool.insert(block)
        segment = self.segments[block.segment]
        segment.size += mapped
        self.largest_segment = max(self.largest_segment, segment.size)
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

    # ---- giving memory back (only on the way to an out-of-memory error) ------------------
    def _whole(self, block: Block) -> bool:
        return block.prev is None and block.next is None

    def _release_block(self, block: Block, pool: _Pool) -> None:
        """``release_block``: ``cudaFree`` a cached segment that is one whole free block."""
        pool.remove(block)
        segment = self.segments[block.segment]
        segment.released, segment.size = True, 0
        self.reserved -= block.size
        self.released_bytes += block.size
        self.trace.append(("segment_free", block.address, block.size))

    def _release_available_cached_blocks(self, pool: _Pool, size: int) -> bool:
        """Free the smallest oversize cached segment at least ``max(size, max_split_size)``, or
        else oversize ones from the largest down until that much is freed (with
        ``max_split_size_mb`` only)."""
        limit = self.config.max_split_size
        if limit is None:
            return False
        target = max(size, limit)
        index = bisect.bisect_left(pool.keys, (target, 0))
        if index < len(pool.keys) and not self.segments[pool.blocks[pool.keys[index]].segment].expandable:
            self._release_block(pool.blocks[pool.keys[index]], pool)
            return True
        chosen: list[Block] = []
        freed = 0
        for key in reversed(pool.keys[:index]):
            block = pool.blocks[key]
            if freed >= target or block.size < limit:
                break
            if not self.segments[block.segment].expandable:
                chosen.append(block)
                freed += block.size
        for block in chosen:
            self._release_block(block, pool)
        return freed >= target

    def _release_cached_blocks(self) -> None:
        """``release_cached_blocks``: free every cached segment that is one whole free block, and
        unmap the whole free pages of expandable segments (a segment with none mapped goes)."""
        for pool in (self.pools["large"], self.pools["small"]):
            to_unmap = []
            for key in list(pool.keys):
                block = pool.blocks[key]
                if self.segments[block.segment].expandable:
                    to_unmap.append(block)
                elif self._whole(block):
                    self._release_block(block, pool)
            for block in to_unmap:
                self._unmap(block, pool)
                if self._whole(block) and not block.mapped:
                    pool.unmapped.remove((block.address, block))
                    self.segments[block.segment].released = True

    def _unmap(self, block: Block, pool: _Pool) -> None:
        """``unmap_block``: unmap the pages lying wholly inside a free expandable block; the free
        bytes before and after them stay mapped as blocks of their own."""
        segment = self.segments[block.segment]
        page = self._page(pool)
        start = segment.address + -(-(block.address - segment.address) // page) * page
        end = segment.address + (block.address + block.size - segment.address) // page * page
        if end <= start:
            return
        pool.remove(block)
        if start > block.address:
            before = Block(block.address, start - block.address, block.pool, block.segment,
                           prev=block.prev, next=block)
            self._link(before)
            pool.insert(before)
        if end < block.address + block.size:
            after = Block(end, block.address + block.size - end, block.pool, block.segment,
                          prev=block, next=block.next)
            self._link(after)
            pool.insert(after)
        block.address, block.size, block.mapped = start, end - start, False
        self._merge(block, block.prev, pool)
        self._merge(block, block.next, pool)
        pool.add_unmapped(block)
        segment.size -= end - start
        self.reserved -= end - start
        self.released_bytes += end - start
        self.trace.append(("segment_unmap", start, end - start))

    def _link(self, block: Block) -> None:
        """Point ``block``'s neighbours (already set on it) back at it."""
        if block.prev is not None:
            block.prev.next = block
        else:
            self.segments[block.segment].head = block
        if block.next is not None:
            block.next.prev = block

    def _collect_garbage(self) -> None:
        """``garbage_collect_cached_blocks``: above ``threshold * allowed`` reserved bytes, free
        whole cached large-pool segments at least as old as the average (age: free-block searches
        since the block was cached), repeatedly, until the excess is freed or none is left."""
        assert self.allowed is not None
        threshold = int(self.config.garbage_collection_threshold * self.allowed)
        if self.reserved <= threshold:
            return
        target = self.reserved - threshold
        pool = self.pools["large"]
        whole = [pool.blocks[key] for key in pool.keys if self._whole(pool.blocks[key])]
        total_age = sum(pool.searches - block.gc_base for block in whole)
        count = len(whole)
        reclaimed, freed = 0, True
        while reclaimed < target and freed and count > 0:
            average = total_age / count
            freed = False
            for key in list(pool.keys):
                block = pool.blocks[key]
                age = pool.searches - block.gc_base
                if self._whole(block) and not self.segments[block.segment].expandable and age >= average:
                    freed = True
                    reclaimed += block.size
                    total_age -= age
                    count -= 1
                    self._release_block(block, pool)

    # ---- state ------------------------------------------------------------------------
    def blocks(self, segment: Segment) -> list[Block]:
        """The mapped blocks of ``segment`` in address order (none once it is released)."""
        out: list[Block] = []
        b: Block | None = None if segment.released else segment.head
        while b is not None:
            if b.mapped:
                out.append(b)
            b = b.next
        return out

    def largest_free_block(self) -> int:
        """Bytes of the largest cached free block (0 when none)."""
        return max((k[0] for pool in self.pools.values() for k in pool.keys[-1:]), default=0)


_NO_LIMIT = ("cuDNN workspaces and kernel temporaries the tracker does not see; the out-of-memory "
             "retry that frees cached blocks (a run near the limit may need slightly less)")
_WITH_LIMIT = ("cuDNN workspaces and kernel temporaries the tracker does not see; other streams, "
               "CUDA graphs' private pools and IPC (the device limit is taken as given)")


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
        leaves_out: what the model does not see.
        capacity_bytes: bytes the allocator could use (``DeviceCapacity.usable``; ``None``: no
            device limit was modelled).
        device_total_bytes: the device's ``total_memory`` (``None`` without a capacity).
        allowed_bytes: ``per_process_memory_fraction``'s limit (``None``: no fraction).
        oom: the replay ran out of memory (torch raises ``OutOfMemoryError``); the other figures
            are those up to that request.
        oom_event: index in the event log of the request that failed.
        oom_requested_bytes, oom_rounded_bytes: that request, as asked and after ``round_size``.
        oom_allocation_bytes: the segment it needed (torch's "Tried to allocate").
        reserved_at_oom, allocated_at_oom: reserved and allocated bytes then (after the retry
            freed what it could).
        oom_rejected: refused at once by ``throw_on_cudamalloc_oom`` (no cache freed, no retry).
        alloc_retries: requests that freed the cache and retried (``num_alloc_retries``).
        released_bytes: bytes given back to the driver on the way (garbage collection, retries).
    """

    max_reserved_bytes: int
    max_allocated_bytes: int
    largest_segment_bytes: int
    segments: int
    reserved_at_peak: int
    allocated_at_peak: int
    fragmentation_at_peak: float
    config: str = ""
    leaves_out: str = field(default=_NO_LIMIT)
    capacity_bytes: int | None = None
    device_total_bytes: int | None = None
    allowed_bytes: int | None = None
    oom: bool = False
    oom_event: int | None = None
    oom_requested_bytes: int | None = None
    oom_rounded_bytes: int | None = None
    oom_allocation_bytes: int | None = None
    reserved_at_oom: int | None = None
    allocated_at_oom: int | None = None
    oom_rejected: bool = False
    alloc_retries: int = 0
    released_bytes: int = 0

    def to_dict(self) -> dict[str, object]:
        return dict(vars(self))


Event = tuple[str, int, int]
"""``("alloc", id, nbytes)`` or ``("free", id, 0)``, in the order they happened."""


def replay(events: Iterable[Event], config: AllocatorConfig | None = None,
           model: CachingAllocatorModel | None = None, *,
           capacity: DeviceCapacity | int | None = None) -> AllocatorPrediction:
    """Feed an allocation log through the allocator model and summarise it.

    Zero-byte allocations are skipped (torch serves them without the allocator); a ``free`` of an
    id never allocated is ignored (e.g. a storage created before the log began). With a capacity,
    a request the device cannot hold ends the replay there (``oom=True``), as torch's
    ``OutOfMemoryError`` ends the step.

    Args:
        events: ``("alloc", id, nbytes)`` / ``("free", id, 0)`` tuples in order.
        config: allocator options (default: torch's defaults).
        model: a fresh model to use (to inspect its segments or trace afterwards); it carries its
            own capacity.
        capacity: the device memory the caching allocator can use: a
            :class:`~revprof.memory.cards.DeviceCapacity` (``usable`` bytes for ``cudaMalloc``,
            ``total_bytes`` as the base of ``per_process_memory_fraction``) or a byte count used
            as both. It is the allocator's view: pass the card's ``total_memory`` less what is not
            the allocator's (CUDA context, other processes); ``None``: no limit.

    Raises:
        RevprofError: ``per_process_memory_fraction`` below 1 without a capacity.
    """
    if model is not None and capacity is not None:
        raise ValueError("pass the capacity to the model, not beside it")
    model = model or CachingAllocatorModel(config, capacity)
    live: dict[int, Block] = {}
    at_peak = (0, 0)
    failure: tuple[int, AllocatorOutOfMemory] | None = None
    for index, (action, key, nbytes) in enumerate(events):
        if action == "alloc":
            if nbytes > 0:
                try:
                    live[key] = model.malloc(nbytes, tag=key)
                except AllocatorOutOfMemory as error:
                    failure = (index, error)
                    break
                if model.allocated > at_peak[1]:
                    at_peak = (model.reserved, model.allocated)
        elif action == "free":
            block = live.pop(key, None)
            if block is not None:
                model.free(block)
        else:
            raise ValueError(f"unknown event action {action!r}")
    reserved, allocated = at_peak
    limit = model.capacity
    oom: dict[str, object] = {}
    if failure is not None:
        index, refused = failure
        oom = {"oom": True, "oom_event": index, "oom_requested_bytes": refused.requested,
               "oom_rounded_bytes": refused.rounded, "oom_allocation_bytes": refused.allocation,
               "reserved_at_oom": refused.reserved, "allocated_at_oom": refused.allocated,
               "oom_rejected": refused.rejected}
    return AllocatorPrediction(
        max_reserved_bytes=model.max_reserved, max_allocated_bytes=model.max_allocated,
        largest_segment_bytes=model.largest_segment,
        segments=len(model.segments), reserved_at_peak=reserved, allocated_at_peak=allocated,
        fragmentation_at_peak=(1 - allocated / reserved) if reserved else 0.0,
        config=model.config.to_conf(), leaves_out=_NO_LIMIT if limit is None else _WITH_LIMIT,
        capacity_bytes=None if limit is None else limit.usable,
        device_total_bytes=None if limit is None else limit.total_bytes,
        allowed_bytes=model.allowed, alloc_retries=model.alloc_retries,
        released_bytes=model.released_bytes, **oom)  # type: ignore[arg-type]


def replay_sizes(sizes: Sequence[int], config: AllocatorConfig | None = None, *,
                 capacity: DeviceCapacity | int | None = None) -> AllocatorPrediction:
    """Shorthand for tests: positive entries allocate, ``-k`` frees the k-th allocation (1-based)."""
    events: list[Event] = []
    count = 0
    for s in sizes:
        if s > 0:
            count += 1
            events.append(("alloc", count, s))
        else:
            events.append(("free", -s, 0))
    return replay(events, config, capacity=capacity)


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
