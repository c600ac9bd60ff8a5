"""The caching-allocator model: each rule against an event sequence worked out by hand.

Sizes: 1 MiB = 1,048,576 B. Segments: small pool 2 MiB, large pool 20 MiB below 10 MiB requests,
else the request rounded up to 2 MiB. The arithmetic is written beside every case.
"""

from __future__ import annotations

import random

import pytest

from revprof import RevprofError
from revprof.memory.allocator import (
    LARGE_BUFFER, SMALL_BUFFER, AllocatorConfig, CachingAllocatorModel, parse_alloc_conf, replay,
    replay_sizes,
)

MiB = 2**20
EXPANDABLE = AllocatorConfig(expandable_segments=True)


def test_rounding_to_512_and_the_small_pool_segment():
    # 1 B -> one 512 B block in a fresh 2 MiB small segment; 1000 B -> 1024 B in the same segment
    p = replay_sizes([1, 1000])
    assert p.max_allocated_bytes == 512 + 1024
    assert p.max_reserved_bytes == 2 * MiB and p.segments == 1


def test_small_pool_holds_two_one_mib_blocks_per_segment():
    # 1 MiB is still "small": 2 per 2 MiB segment; 5 of them need ceil(5/2) = 3 segments = 6 MiB
    p = replay_sizes([MiB] * 5)
    assert p.max_reserved_bytes == 3 * 2 * MiB
    assert p.max_allocated_bytes == 5 * MiB


def test_large_pool_20_mib_segment_is_split_and_reused():
    # 1 MiB + 1 B -> 1,049,088 B (large pool) in a 20 MiB segment, remainder 19,922,432 B > 1 MiB: split.
    # 5 MiB fits the remainder (19,922,432 >= 5,242,880): still 20 MiB reserved.
    # 15 MiB: remainder now 14,679,552 B < 15,728,640 B -> own segment, 15 MiB rounded to 2 MiB = 16 MiB.
    p = replay_sizes([MiB + 1, 5 * MiB])
    assert p.max_reserved_bytes == 20 * MiB
    p = replay_sizes([MiB + 1, 5 * MiB, 15 * MiB])
    assert p.max_reserved_bytes == 20 * MiB + 16 * MiB
    assert p.largest_segment_bytes == 20 * MiB


def test_requests_of_10_mib_and_more_get_their_own_2_mib_rounded_segment():
    # 10 MiB + 1 B -> 10,486,272 B -> segment ceil(10,486,272 / 2 MiB) * 2 MiB = 12 MiB
    p = replay_sizes([10 * MiB + 1])
    assert p.max_reserved_bytes == 12 * MiB
    assert p.max_allocated_bytes == 10 * MiB + 512  # remainder 2,096,640 B > 1 MiB: split off


def test_no_split_when_the_large_remainder_is_at_most_1_mib():
    # 19.5 MiB = 20,447,232 B -> own segment of 20 MiB; remainder 524,288 B <= 1 MiB: not split,
    # so the whole 20 MiB block counts as allocated. A 100 KiB request then opens a 2 MiB small segment.
    p = replay_sizes([20_447_232, 102_400])
    assert p.max_allocated_bytes == 20 * MiB + 102_400
    assert p.max_reserved_bytes == 20 * MiB + 2 * MiB


def test_best_fit_by_size_then_address():
    model = CachingAllocatorModel()
    a, b, c = (model.malloc(n) for n in (12 * MiB, 14 * MiB, 12 * MiB))  # segments 12, 14, 12 MiB
    for block in (a, b, c):
        model.free(block)
    addresses = [a.address, b.address, c.address]
    # 11 MiB: the smallest fitting blocks are the two 12 MiB ones; the lower address wins
    # (remainder 1 MiB is not > 1 MiB: not split)
    first = model.malloc(11 * MiB)
    assert first.address == addresses[0] and first.size == 12 * MiB
    second = model.malloc(11 * MiB)
    assert second.address == addresses[2]
    # then the 14 MiB block: remainder 3 MiB > 1 MiB, split; a 3 MiB request takes the remainder
    third = model.malloc(11 * MiB)
    assert third.address == addresses[1] and third.size == 11 * MiB
    model.malloc(3 * MiB)
    assert model.reserved == 12 * MiB + 14 * MiB + 12 * MiB  # = 38 MiB, nothing new
    model.malloc(3 * MiB)  # no free block left: a fresh 20 MiB segment
    assert model.max_reserved == 38 * MiB + 20 * MiB


def test_freed_neighbours_coalesce():
    # A, B, C of 4 MiB in one 20 MiB segment (8 MiB left at its end). Free A and B: one 8 MiB block
    # at the start. 7 MiB: two 8 MiB blocks tie on size; the merged one has the lower address.
    model = CachingAllocatorModel()
    a, b, _ = (model.malloc(4 * MiB) for _ in range(3))
    model.free(a)
    model.free(b)
    d = model.malloc(7 * MiB)
    assert d.address == a.address
    assert model.max_reserved == 20 * MiB
    # without merging no 7 MiB block would exist in this segment: a second one would be needed
    model.malloc(7 * MiB)  # takes the 8 MiB at the end
    assert model.max_reserved == 20 * MiB


def test_max_split_size_keeps_oversize_blocks_whole_and_for_large_requests_only():
    conf = parse_alloc_conf("max_split_size_mb:40")
    # default: a freed 50 MiB segment is split for a 30 MiB request (remainder 20 MiB > 1 MiB)
    assert replay_sizes([50 * MiB, -1, 30 * MiB]).max_reserved_bytes == 50 * MiB
    # 40 MiB limit: the 50 MiB block is oversize and 30 MiB < 40 MiB may not use it: own 30 MiB segment
    assert replay_sizes([50 * MiB, -1, 30 * MiB], conf).max_reserved_bytes == 50 * MiB + 30 * MiB
    # 45 MiB >= 40 MiB may use it since 50 < 45 + 20; it is not split, so 50 MiB count as allocated
    p = replay_sizes([50 * MiB, -1, 45 * MiB], conf)
    assert p.max_reserved_bytes == 50 * MiB and p.max_allocated_bytes == 50 * MiB
    # 60 MiB may not take a 100 MiB block (100 >= 60 + 20 MiB of allowed rounding): own segment
    assert replay_sizes([100 * MiB, -1, 60 * MiB], conf).max_reserved_bytes == 160 * MiB
    wider = parse_alloc_conf("max_split_size_mb:40,max_non_split_rounding_mb:50")
    assert replay_sizes([100 * MiB, -1, 60 * MiB], wider).max_reserved_bytes == 100 * MiB


def test_expandable_segments_map_pages_at_the_end():
    # 30 MiB -> 2 pages of 20 MiB mapped (40 MiB), 10 MiB free at the end; 5 MiB fits there.
    # 8 MiB: only 5 MiB free at the end, so 3 MiB more are needed: one more page -> 60 MiB.
    p = replay_sizes([30 * MiB, 5 * MiB], EXPANDABLE)
    assert p.max_reserved_bytes == 40 * MiB and p.segments == 1
    p = replay_sizes([30 * MiB, 5 * MiB, 8 * MiB], EXPANDABLE)
    assert p.max_reserved_bytes == 60 * MiB
    # the same with fixed segments: 30 MiB own segment, 20 MiB segment for 5 MiB and then 8 MiB
    assert replay_sizes([30 * MiB, 5 * MiB, 8 * MiB]).max_reserved_bytes == 50 * MiB
    # small pool: 2 MiB pages; five 512 KiB blocks need 2.5 MiB -> 2 pages
    assert replay_sizes([512 * 1024] * 5, EXPANDABLE).max_reserved_bytes == 4 * MiB


def test_expandable_segments_split_any_remainder_of_512_bytes():
    # 12 MiB + 20 MiB page granularity: 12 MiB maps one 20 MiB page; 7.5 MiB then fits the 8 MiB
    # left (split keeps 512 KiB free, where fixed segments would not split below 1 MiB).
    model = CachingAllocatorModel(EXPANDABLE)
    model.malloc(12 * MiB)
    block = model.malloc(7 * MiB + 512 * 1024)
    assert block.size == 7 * MiB + 512 * 1024
    assert model.reserved == 20 * MiB


def test_roundup_power2_divisions():
    # 5 MiB + 1 B with 4 divisions: between 4 MiB and 8 MiB the steps are 1 MiB -> 6 MiB
    p = replay_sizes([5 * MiB + 1], parse_alloc_conf("roundup_power2_divisions:4"))
    assert p.max_allocated_bytes == 6 * MiB


@pytest.mark.parametrize("conf", ["", "expandable_segments:True", "max_split_size_mb:40"],
                         ids=["default", "expandable", "max_split"])
def test_reserved_is_never_below_allocated(conf):
    rng = random.Random(7)
    for _ in range(30):
        events, live, ident = [], [], 0
        for _ in range(150):
            if live and rng.random() < 0.45:
                events.append(("free", live.pop(rng.randrange(len(live))), 0))
            else:
                ident += 1
                live.append(ident)
                events.append(("alloc", ident, rng.choice([rng.randint(1, 4096), rng.randint(1, 3 * MiB),
                                                           rng.randint(MiB, 60 * MiB)])))
        p = replay(events, parse_alloc_conf(conf))
        assert p.max_reserved_bytes >= p.max_allocated_bytes
        assert p.reserved_at_peak >= p.allocated_at_peak


def test_expandable_reserved_stays_within_a_page_of_allocated_while_growing():
    rng = random.Random(3)
    sizes = [rng.choice([rng.randint(1, 4096), rng.randint(MiB, 40 * MiB)]) for _ in range(200)]
    p = replay_sizes(sizes, EXPANDABLE)
    assert 0 <= p.max_reserved_bytes - p.max_allocated_bytes < LARGE_BUFFER + SMALL_BUFFER
    fixed = replay_sizes(sizes)
    assert fixed.max_reserved_bytes - fixed.max_allocated_bytes > p.max_reserved_bytes - p.max_allocated_bytes


def test_zero_byte_allocations_and_unknown_frees_are_ignored():
    p = replay([("alloc", 1, 0), ("free", 1, 0), ("free", 99, 0)])
    assert p.max_reserved_bytes == 0 and p.segments == 0


@pytest.mark.parametrize("text, message", [
    ("max_split_size_mb:10", "max_split_size_mb too small, must be >= 20 \\(got 10\\)"),
    ("max_split_mb:100", "Unrecognized key 'max_split_mb' .*\\(did you mean 'max_split_size_mb'"),
    ("expandable_segments:yes", "Expected 'True' or 'False' at index 2 in ConfigTokenizer but got 'yes'"),
    ("backend:cudaMallocAsync", "not modelled"),
    ("roundup_power2_divisions:3", "divisions has to be power of 2"),
    ("max_split_size_mb", "Index out of bounds .*'max_split_size_mb' ends before its value"),
])
def test_bad_allocator_options_are_clear_errors(text, message):
    with pytest.raises(RevprofError, match=message) as error:
        parse_alloc_conf(text)
    assert "\n" not in str(error.value)


def test_parse_round_trips():
    conf = parse_alloc_conf(" max_split_size_mb:128 , expandable_segments:True,garbage_collection_threshold:0.6")
    assert conf == AllocatorConfig(max_split_size=128 * MiB, expandable_segments=True,
                                   garbage_collection_threshold=0.6)
    assert parse_alloc_conf(conf.to_conf()) == conf
    assert parse_alloc_conf(None) == AllocatorConfig()
