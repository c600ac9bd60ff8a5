"""The allocator model as torch 2.13 is (issue 24): its option parser, the rounding rules, a device
capacity and the out-of-memory path.

Tests named after a PyTorch test transcribe it (``test/test_cuda.py``; ``test/test_cuda_expandable_segments.py``
runs the same file with ``expandable_segments:True``, hence the expandable variants). Every other
case is worked out by hand, the arithmetic beside it. 1 MiB = 1,048,576 B.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
import torch

from revprof import RevprofError
from revprof.memory.alloc_conf import alloc_conf_from_environ, torch_reason
from revprof.memory.allocator import (
    AllocatorConfig, AllocatorOutOfMemory, CachingAllocatorModel, parse_alloc_conf, replay_sizes,
)
from revprof.memory.cards import CARDS, DeviceCapacity, parse_device_memory

MiB = 2**20
RTX3060 = CARDS["rtx3060"]


def power2_div(size: int, divisions: int) -> int:
    """``power2_div`` of ``test_allocator_settings``: step from the lower power of two in
    ``divisions`` equal steps up to the first at least ``size``."""
    upper = 1 << (size - 1).bit_length()
    if upper == size:
        return size
    value, step = upper // 2, upper // 2 // divisions
    while value < size:
        value += step
    return value


# ---- rounding ------------------------------------------------------------------------------
def test_allocator_settings_rounding():
    # test_allocator_settings: 21 Mi floats = 84 MiB; the block is exactly that by default,
    # power2_div(84 MiB, 4) = 96 MiB with 4 divisions (64..128 MiB in 16 MiB steps)
    nbytes, big = 4 * 21 * MiB, 4 * 100 * MiB
    assert replay_sizes([nbytes]).max_allocated_bytes == nbytes
    four = parse_alloc_conf("roundup_power2_divisions:4")
    assert replay_sizes([nbytes], four).max_allocated_bytes == power2_div(nbytes, 4) == 96 * MiB
    # "should have reset the power2 divisions now": a new string without the option
    reset = parse_alloc_conf("garbage_collection_threshold:0.5,max_split_size_mb:40")
    assert replay_sizes([nbytes], reset).max_allocated_bytes == nbytes
    # the list syntax: 84 MiB lies in [64, 128) MiB (8 divisions: 88 MiB), 400 MiB in
    # [256, 512) MiB (2 divisions: 512 MiB)
    listed = parse_alloc_conf(
        "garbage_collection_threshold:0.5,roundup_power2_divisions:[64:8,128:2,256:2,512:2,1024:1,>:1]")
    assert replay_sizes([nbytes], listed).max_allocated_bytes == power2_div(nbytes, 8) == 88 * MiB
    assert replay_sizes([big], listed).max_allocated_bytes == power2_div(big, 2) == 512 * MiB


def test_one_division_does_not_round_to_a_power_of_two():
    # torch rounds only with more than 1 division: 40 MiB + 1 B -> 40 MiB + 512 B, segment rounded
    # to 2 MiB = 42 MiB (revprof once rounded it to 64 MiB)
    p = replay_sizes([40 * MiB + 1], parse_alloc_conf("roundup_power2_divisions:1"))
    assert p.max_allocated_bytes == 40 * MiB + 512
    assert p.max_reserved_bytes == 42 * MiB


def test_division_list_follows_the_parser_intervals_not_the_docs_table():
    # [256:1,512:2,>:4]: the boundary 256 is interval 8, sizes in [256, 512) MiB (the docs' table
    # puts them one power of two lower); the first value also covers every interval below.
    conf = parse_alloc_conf("roundup_power2_divisions:[256:1,512:2,>:4]")
    assert conf.roundup_power2_divisions == (1,) * 9 + (2,) + (4,) * 6
    # 300 MiB + 1 B: 1 division -> 512-byte rounding (the docs would say 2 divisions: 384 MiB)
    assert replay_sizes([300 * MiB + 1], conf).max_allocated_bytes == 300 * MiB + 512
    # 600 MiB + 1 B: [512, 1024) MiB in 2 divisions of 256 MiB -> 768 MiB
    assert replay_sizes([600 * MiB + 1], conf).max_allocated_bytes == 768 * MiB
    # 1.5 GiB + 1 B: [1, 2) GiB in 4 divisions of 256 MiB -> 1792 MiB
    assert replay_sizes([1536 * MiB + 1], conf).max_allocated_bytes == 1792 * MiB
    # '>' fills from the interval after the last boundary: [>:4] leaves interval 0 (< 2 MiB) at 0
    assert parse_alloc_conf("roundup_power2_divisions:[>:4]").roundup_power2_divisions == (0,) + (4,) * 15


def test_small_sizes_round_to_512_bytes_below_512_times_the_divisions():
    # 1200 B with 4 divisions: 1200 <= 512 * 4, so 512-byte rounding -> 1536 B (the code's
    # comment promises 1280 B); 5000 B > 2048 B: 4096..8192 in steps of 1024 -> 5120 B
    for text in ("roundup_power2_divisions:4", "roundup_power2_divisions:[1:4,>:4]"):
        conf = parse_alloc_conf(text)
        assert replay_sizes([1200], conf).max_allocated_bytes == 1536
        assert replay_sizes([5000], conf).max_allocated_bytes == 5120


def test_large_segment_size_sets_the_shared_segment_and_the_expandable_page():
    # 5 MiB requests share large_segment_size_mb segments: 30 MiB instead of 20 MiB
    conf = parse_alloc_conf("large_segment_size_mb:30")
    assert replay_sizes([5 * MiB], conf).max_reserved_bytes == 30 * MiB
    # five of them: 25 MiB fit one 30 MiB segment, so one segment instead of two of 20 MiB
    assert replay_sizes([5 * MiB] * 5, conf).max_reserved_bytes == 30 * MiB
    assert replay_sizes([5 * MiB] * 5).max_reserved_bytes == 40 * MiB
    # expandable pages of 30 MiB: 35 MiB needs two pages = 60 MiB (20 MiB pages: 40 MiB)
    pages = parse_alloc_conf("large_segment_size_mb:30,expandable_segments:True")
    assert replay_sizes([35 * MiB], pages).max_reserved_bytes == 60 * MiB
    # the non-split rounding defaults to the large segment size: a 100 MiB block may serve 71 MiB
    # (100 < 71 + 30) with max_split_size_mb:40 and 30 MiB segments, not with 20 MiB
    split30 = parse_alloc_conf("large_segment_size_mb:30,max_split_size_mb:40")
    assert replay_sizes([100 * MiB, -1, 71 * MiB], split30).max_reserved_bytes == 100 * MiB
    split20 = parse_alloc_conf("max_split_size_mb:40")
    assert replay_sizes([100 * MiB, -1, 71 * MiB], split20).max_reserved_bytes == 172 * MiB


def test_max_split_size_of_20_mib_is_accepted_and_modelled():
    # 2.13 accepts 20 and up. 30 MiB >= 20 MiB may take the cached 50 MiB block only if
    # 50 < 30 + 20: it is not, so a 30 MiB segment of its own: 80 MiB
    conf = parse_alloc_conf("max_split_size_mb:20")
    assert conf.max_split_size == 20 * MiB
    assert replay_sizes([50 * MiB, -1, 30 * MiB], conf).max_reserved_bytes == 80 * MiB


# ---- the option parser ---------------------------------------------------------------------
ACCEPTED = [
    "", "roundup_power2_divisions:1", "roundup_power2_divisions:[256:1,512:2,>:4]",
    "roundup_power2_divisions:[64:8,128:2,256:2,512:2,1024:1,>:1]", "large_segment_size_mb:30",
    "max_split_size_mb:20", "max_non_split_rounding_mb:20", "garbage_collection_threshold:0.5",
    "per_process_memory_fraction:0.0", "per_process_memory_fraction:0.5",
    "per_process_memory_fraction:1.0", "per_process_memory_fraction:0.5,garbage_collection_threshold:0.8",
    "release_lock_on_cudamalloc:True", "pinned_num_register_threads:8", "backend:native",
    "throw_on_cudamalloc_oom:True", "expandable_segments:True,", "max_split_size_mb:128:expandable_segments:True",
    "max_split_size_mb:0020", "garbage_collection_threshold:0.5abc",
]
REFUSED = [  # (string, torch's reason)
    ("max_split_size_mb:19", "CachingAllocator option max_split_size_mb too small, must be >= 20"),
    ("max_split_size_mb:2", "CachingAllocator option max_split_size_mb too small, must be >= 20"),
    ("large_segment_size_mb:30,max_split_size_mb:20", "max_split_size_mb too small, must be >= 30"),
    ("large_segment_size_mb:10", "CachingAllocator option large_segment_size_mb must be > 10 MB"),
    ("max_non_split_rounding_mb:19", "max_non_split_rounding_mb too small, must be >= 20"),
    ("garbage_collection_threshold:1.2", "garbage_collect_threshold is invalid, set it in (0.0, 1.0)"),
    ("garbage_collection_threshold:0", "garbage_collect_threshold is invalid, set it in (0.0, 1.0)"),
    ("garbage_collection_threshold:1.0", "garbage_collect_threshold is invalid, set it in (0.0, 1.0)"),
    ("garbage_collection_threshold:1e-310", "stod"),
    ("roundup_power2_divisions:0", "For roundups, the divisions has to be power of 2"),
    ("roundup_power2_divisions:[256:3]", "the divisions has to be power of 2 or 0 to disable roundup"),
    ("roundup_power2_divisions:[255:4]", "For roundups, the intervals have to be power of 2"),
    ("roundup_power2_divisions:[256:1,512:2", "Index out of bounds in ConfigTokenizer"),
    ("per_process_memory_fraction:-0.1", "per_process_memory_fraction is invalid, set it in [0.0, 1.0]"),
    ("per_process_memory_fraction:1.1", "per_process_memory_fraction is invalid, set it in [0.0, 1.0]"),
    ("release_lock_on_cudamalloc:none", "Expected 'True' or 'False' at index 2 in ConfigTokenizer but got 'none'"),
    ("pinned_use_cuda_host_register:none", "Expected 'True' or 'False' at index 2"),
    ("pinned_num_register_threads:none", "stoull"),
    ("pinned_num_register_threads:1024", "Number of register threads should be less than or equal to 128, got 1024"),
    ("throw_on_cudamalloc_oom:1", "Expected 'True' or 'False' at index 2"),
    ("expandable_segments:true", "Expected 'True' or 'False' at index 2 in ConfigTokenizer but got 'true'"),
    ("foo:1,bar:2", "Unrecognized key 'foo' in Accelerator allocator config."),
    ("expandable_segments_reserve:0.5", "Unrecognized key 'expandable_segments_reserve'"),
    (",expandable_segments:True", "Unrecognized key ','"),
    ("max_split_size_mb:abc", "stoull"),
    ("max_split_size_mb:18446744073709551616", "stoull"),
    ("max_split_size_mb", "Index out of bounds in ConfigTokenizer"),
    ("max_split_size_mb:20,backend:native,release_lock_on_cudamalloc:none", "Expected 'True' or 'False'"),
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_torch_accepts(text):
    # test_allocator_settings and test_allocator_memory_fraction_setting accept these (and 2.13's
    # parser walks tokens without checking ':' and ',', and reads numbers with stoull/stod)
    assert torch_reason(text) is None
    assert parse_alloc_conf(parse_alloc_conf(text).to_conf()) == parse_alloc_conf(text)


@pytest.mark.parametrize("text, reason", REFUSED)
def test_torch_refuses_with_its_reason(text, reason):
    # test_allocator_settings: foo:1,bar:2, garbage_collection_threshold:1.2, max_split_size_mb:2,
    # release_lock_on_cudamalloc:none, pinned_use_cuda_host_register:none,
    # pinned_num_register_threads:none and :1024 raise; test_allocator_memory_fraction_setting:
    # -0.1 and 1.1 are invalid fractions; the rest by hand from the 2.13 parsers
    assert reason in torch_reason(text)
    with pytest.raises(RevprofError) as error:
        parse_alloc_conf(text)
    message = str(error.value)
    assert reason in message and "torch 2.13" in message and "\n" not in message


def test_the_async_backend_is_the_one_accepted_option_not_modelled():
    assert torch_reason("backend:cudaMallocAsync") is None
    with pytest.raises(RevprofError, match="'cudaMallocAsync' is not modelled"):
        parse_alloc_conf("backend:cudaMallocAsync")


_SET = getattr(torch._C, "_accelerator_setAllocatorSettings", None)


@pytest.mark.skipif(_SET is None or torch.version.cuda is not None,
                    reason="needs a CPU build of torch with _accelerator_setAllocatorSettings "
                           "(on a CUDA build it would change this process's allocator)")
def test_generic_parser_refuses_exactly_what_torchs_does():
    # the device-generic parser of the installed torch (a CPU build: no device keys registered)
    # against torch_reason(cuda_build=False), on the table above and on random strings of keys,
    # values and separators; large_segment_size_mb persists between calls in torch, so reset it
    def torch_says(text: str) -> str | None:
        _SET("large_segment_size_mb:20")
        try:
            _SET(text)
        except Exception as error:  # ValueError, IndexError or RuntimeError (internal assert)
            return str(error).splitlines()[0].split("please report a bug to PyTorch. ")[-1].strip()
        return None

    atoms = ["max_split_size_mb", "large_segment_size_mb", "max_non_split_rounding_mb",
             "garbage_collection_threshold", "roundup_power2_divisions", "expandable_segments",
             "pinned_max_round_threshold_mb", "foo", ":", ",", "[", "]", ">", "0", "1", "2", "4", "3",
             "20", "11", "256", "0.5", "1e-3", "nan", "True", "true", "-1", "+2", " ", "0x10", "1e400"]
    rng = random.Random(24)
    strings = [text for text, _ in REFUSED if "backend" not in text] + ACCEPTED
    strings += ["".join(rng.choice(atoms) for _ in range(rng.randint(1, 9))) for _ in range(3000)]
    try:
        mismatches = [(text, torch_says(text), torch_reason(text, cuda_build=False)) for text in strings
                      if torch_says(text) != torch_reason(text, cuda_build=False)]
    finally:
        _SET("large_segment_size_mb:20")
        _SET("")
    assert mismatches == []


# ---- the environment -----------------------------------------------------------------------
def test_pytorch_alloc_conf_is_read_when_the_cuda_variable_is_unset():
    assert alloc_conf_from_environ({"PYTORCH_ALLOC_CONF": "max_split_size_mb:128"}) == "max_split_size_mb:128"
    both = {"PYTORCH_CUDA_ALLOC_CONF": "", "PYTORCH_ALLOC_CONF": "max_split_size_mb:128"}
    assert alloc_conf_from_environ(both) == ""  # set, even empty, it wins
    assert alloc_conf_from_environ({}) == ""
    with pytest.raises(RevprofError, match="PYTORCH_HIP_ALLOC_CONF"):
        alloc_conf_from_environ({"PYTORCH_HIP_ALLOC_CONF": "expandable_segments:True"})


def test_installed_torch_reads_pytorch_alloc_conf_the_same_way():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTORCH_CUDA_ALLOC", "PYTORCH_HIP_ALLOC"))}
    env["PYTORCH_ALLOC_CONF"] = "max_split_size_mb:128"
    seen = subprocess.run([sys.executable, "-c", "import torch; print(torch._C._accelerator_getAllocatorSettings())"],
                          env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert seen == alloc_conf_from_environ(env) == "max_split_size_mb:128"


# ---- device capacity: the retry path and out of memory -------------------------------------
def test_retry_frees_the_cached_segment_and_fits():
    # 30 MiB, freed (cached), then 40 MiB: no cached block fits. Without a limit a second segment:
    # 70 MiB reserved. On 40 MiB: cudaMalloc of 40 MiB fails (30 + 40 > 40), no max_split_size
    # (release_available_cached_blocks does nothing), release_cached_blocks frees the 30 MiB
    # segment, the retry fits: reserved peaks at 40 MiB.
    assert replay_sizes([30 * MiB, -1, 40 * MiB]).max_reserved_bytes == 70 * MiB
    p = replay_sizes([30 * MiB, -1, 40 * MiB], capacity=40 * MiB)
    assert p.max_reserved_bytes == 40 * MiB and not p.oom
    assert p.alloc_retries == 1 and p.released_bytes == 30 * MiB
    assert p.capacity_bytes == p.device_total_bytes == 40 * MiB


def test_out_of_memory_names_the_request():
    # 30 MiB live, then 40 MiB on 60 MiB: 30 + 40 > 60, nothing cached to free: out of memory at
    # event 1, with 30 MiB reserved and allocated
    p = replay_sizes([30 * MiB, 40 * MiB + 1], capacity=60 * MiB)
    assert p.oom and p.oom_event == 1 and not p.oom_rejected
    assert p.oom_requested_bytes == 40 * MiB + 1
    assert p.oom_rounded_bytes == 40 * MiB + 512
    assert p.oom_allocation_bytes == 42 * MiB  # torch's "Tried to allocate": the 2 MiB-rounded segment
    assert p.reserved_at_oom == p.allocated_at_oom == 30 * MiB
    assert p.max_reserved_bytes == 30 * MiB
    assert "oom" in p.to_dict() and p.to_dict()["oom_event"] == 1


def test_release_available_cached_blocks_frees_only_one_oversize_segment():
    # max_split_size_mb:40, 100 MiB: 50 MiB and 45 MiB (a 46 MiB segment) cached, both oversize.
    # 30 MiB may not use them (30 < 40), and 96 + 30 > 100: release_available_cached_blocks frees
    # the smallest oversize segment of at least max(30, 40) MiB, the 46 MiB one; 50 + 30 fits.
    conf = parse_alloc_conf("max_split_size_mb:40")
    model = CachingAllocatorModel(conf, 100 * MiB)
    a, b = model.malloc(50 * MiB), model.malloc(45 * MiB)
    model.free(a)
    model.free(b)
    model.malloc(30 * MiB)
    assert model.reserved == 80 * MiB and model.max_reserved == 96 * MiB
    assert model.released_bytes == 46 * MiB and model.alloc_retries == 0


def test_expandable_segments_unmap_free_pages_on_the_retry():
    # expandable, 100 MiB: 60 MiB maps 3 pages; 30 MiB maps 2 more (10 MiB free at the end):
    # 100 MiB. Free the 60 MiB; 70 MiB fits no free block and needs 3 more pages after the free
    # 10 MiB: 160 > 100. The retry unmaps the 3 free pages at the start (the 10 MiB lie in a page
    # partly used, so stay); 40 + 60 = 100 MiB fits. Without a limit: 160 MiB.
    conf = AllocatorConfig(expandable_segments=True)
    assert replay_sizes([60 * MiB, 30 * MiB, -1, 70 * MiB], conf).max_reserved_bytes == 160 * MiB
    p = replay_sizes([60 * MiB, 30 * MiB, -1, 70 * MiB], conf, capacity=100 * MiB)
    assert p.max_reserved_bytes == 100 * MiB and not p.oom
    assert p.released_bytes == 60 * MiB and p.alloc_retries == 1


@pytest.mark.parametrize("conf", ["", "expandable_segments:True"], ids=["fixed", "expandable"])
def test_out_of_memory_retry(conf):
    # test_out_of_memory_retry (and its test_cuda_expandable_segments run): half the card twice
    # does not fit; after freeing the first the second reuses its cached memory
    model = CachingAllocatorModel(parse_alloc_conf(conf), RTX3060)
    half = int(RTX3060.total_bytes * 0.5)
    a = model.malloc(half)
    with pytest.raises(AllocatorOutOfMemory):
        model.malloc(half)
    model.free(a)
    reserved = model.reserved
    model.malloc(half)
    assert model.reserved == reserved


@pytest.mark.parametrize("conf", ["", "expandable_segments:True"], ids=["fixed", "expandable"])
def test_set_per_process_memory_fraction(conf):
    # test_set_per_process_memory_fraction: with a fraction of 0.5, 0.499 of the card fits and
    # 0.5 of it (rounded up to 2 MiB) does not
    fraction = parse_alloc_conf(",".join(filter(None, [conf, "per_process_memory_fraction:0.5"])))
    total = RTX3060.total_bytes
    assert not replay_sizes([int(total * 0.499)], fraction, capacity=RTX3060).oom
    p = replay_sizes([int(total * 0.5)], fraction, capacity=RTX3060)
    assert p.oom and p.allowed_bytes == int(0.5 * total)


def test_raises_oom():
    # test_raises_oom: 1 TiB raises, with and without max_split_size_mb:1024
    for conf in ("", "max_split_size_mb:1024"):
        assert replay_sizes([2**40], parse_alloc_conf(conf), capacity=RTX3060).oom


def test_max_split_expandable_without_the_toggle():
    # test_max_split_expandable, fixed segments only (the model keeps one config for a run):
    # 120 MiB allowed, max_split_size_mb:40, three 40 MiB segments; a fourth is out of memory;
    # freed, 120 MiB fits after release_available_cached_blocks frees all three oversize segments
    capacity = DeviceCapacity(1200 * MiB)
    model = CachingAllocatorModel(parse_alloc_conf("max_split_size_mb:40,per_process_memory_fraction:0.1"), capacity)
    blocks = [model.malloc(40 * MiB) for _ in range(3)]
    with pytest.raises(AllocatorOutOfMemory):
        model.malloc(40 * MiB)
    for block in blocks:
        model.free(block)
    model.malloc(120 * MiB)
    assert model.reserved == 120 * MiB and model.released_bytes == 120 * MiB and model.alloc_retries == 1


def test_garbage_collect_without_the_toggle():
    # test_garbage_collect_expandable, fixed segments only: 120 MiB allowed, threshold 0.5 (60 MiB);
    # two 40 MiB segments freed, then 80 MiB: 80 > 60, both are of average age: both freed first
    conf = parse_alloc_conf("garbage_collection_threshold:0.5,per_process_memory_fraction:0.1")
    p = replay_sizes([40 * MiB, 40 * MiB, -1, -2, 80 * MiB], conf, capacity=DeviceCapacity(1200 * MiB))
    assert p.max_reserved_bytes == 80 * MiB and p.released_bytes == 80 * MiB and p.alloc_retries == 0


def test_garbage_collection_lowers_the_peak_under_a_fraction_only():
    # 100 MiB device, fraction 0.5 (50 MiB allowed), threshold 0.5 (25 MiB): 12 and 14 MiB, the
    # 12 freed (26 MiB reserved); 16 MiB finds no block: 26 > 25, the cached 12 MiB segment (age 1
    # = the average) is freed first: 14 + 16 = 30 MiB. Without GC 12 + 14 + 16 = 42 MiB, which
    # fits the fraction; and without a fraction the threshold does nothing.
    capacity = DeviceCapacity(100 * MiB)
    sizes = [12 * MiB, 14 * MiB, -1, 16 * MiB]
    gc = parse_alloc_conf("per_process_memory_fraction:0.5,garbage_collection_threshold:0.5")
    assert replay_sizes(sizes, gc, capacity=capacity).max_reserved_bytes == 30 * MiB
    no_gc = parse_alloc_conf("per_process_memory_fraction:0.5")
    assert replay_sizes(sizes, no_gc, capacity=capacity).max_reserved_bytes == 42 * MiB
    no_fraction = parse_alloc_conf("garbage_collection_threshold:0.5")
    assert replay_sizes(sizes, no_fraction, capacity=capacity).max_reserved_bytes == 42 * MiB


def test_throw_on_cudamalloc_oom_skips_the_retry():
    # fraction 0.4 of 100 MiB = 40 MiB allowed: 30 MiB cached, then 40 MiB. The retry frees the
    # cached segment and fits; throw_on_cudamalloc_oom refuses at once, freeing nothing
    capacity = DeviceCapacity(100 * MiB)
    sizes = [30 * MiB, -1, 40 * MiB]
    assert not replay_sizes(sizes, parse_alloc_conf("per_process_memory_fraction:0.4"), capacity=capacity).oom
    p = replay_sizes(sizes, parse_alloc_conf("per_process_memory_fraction:0.4,throw_on_cudamalloc_oom:True"),
                     capacity=capacity)
    assert p.oom and p.oom_rejected and p.reserved_at_oom == 30 * MiB and p.released_bytes == 0


def test_a_fraction_needs_a_capacity():
    with pytest.raises(RevprofError, match="per_process_memory_fraction:0.5 .* give the device's capacity"):
        replay_sizes([MiB], parse_alloc_conf("per_process_memory_fraction:0.5"))


@pytest.mark.parametrize("conf", ["", "expandable_segments:True", "max_split_size_mb:40"],
                         ids=["default", "expandable", "max_split"])
def test_a_capacity_caps_reserved_and_changes_nothing_when_it_is_not_reached(conf):
    config = parse_alloc_conf(conf)
    rng = random.Random(11)
    for _ in range(20):
        sizes, live = [], []
        for _ in range(120):
            if live and rng.random() < 0.45:
                sizes.append(-live.pop(rng.randrange(len(live))))
            else:
                sizes.append(rng.choice([rng.randint(1, 4096), rng.randint(MiB, 60 * MiB)]))
                live.append(sum(1 for s in sizes if s > 0))
        free = replay_sizes(sizes, config)
        roomy = replay_sizes(sizes, config, capacity=free.max_reserved_bytes)
        assert roomy.to_dict() | {"capacity_bytes": None, "device_total_bytes": None, "leaves_out": ""} == \
            free.to_dict() | {"leaves_out": ""}
        tight = replay_sizes(sizes, config, capacity=free.max_reserved_bytes * 3 // 4)
        assert tight.max_reserved_bytes <= free.max_reserved_bytes * 3 // 4
        assert tight.oom or tight.alloc_retries > 0 or tight.released_bytes > 0


def _consistent(model: CachingAllocatorModel) -> None:
    """Every live segment's blocks tile it, free blocks sit in their pool, the totals add up."""
    live = [segment for segment in model.segments if not segment.released]
    assert sum(segment.size for segment in live) == model.reserved <= model.usable
    allocated = 0
    for segment in live:
        block, prev, address, mapped = segment.head, None, segment.address, 0
        while block is not None:
            assert block.prev is prev and block.address == address
            address += block.size
            mapped += block.size if block.mapped else 0
            allocated += block.size if block.allocated else 0
            if not block.allocated:
                pool = model.pools[block.pool]
                assert (pool.blocks[(block.size, block.address)] is block if block.mapped
                        else (block.address, block) in pool.unmapped)
                assert prev is None or prev.allocated or prev.mapped != block.mapped  # merged
            prev, block = block, block.next
        assert mapped == segment.size
    assert allocated == model.allocated


@pytest.mark.parametrize("conf", ["", "expandable_segments:True", "max_split_size_mb:40",
                                  "per_process_memory_fraction:0.7,garbage_collection_threshold:0.5",
                                  "expandable_segments:True,per_process_memory_fraction:0.7,"
                                  "garbage_collection_threshold:0.5"])
def test_segments_and_pools_stay_consistent_through_retries(conf):
    rng = random.Random(5)
    for _ in range(40):
        model = CachingAllocatorModel(parse_alloc_conf(conf), DeviceCapacity(rng.randint(60, 400) * MiB))
        live = []
        for _ in range(150):
            if live and rng.random() < 0.45:
                model.free(live.pop(rng.randrange(len(live))))
            else:
                try:
                    live.append(model.malloc(rng.choice([rng.randint(1, 4096), rng.randint(MiB, 60 * MiB)])))
                except AllocatorOutOfMemory:
                    pass
            _consistent(model)


# ---- named cards and sizes -----------------------------------------------------------------
def test_device_memory_by_size_or_card_name():
    assert parse_device_memory("12GiB").total_bytes == 12 * 2**30
    assert parse_device_memory("rtx3060").total_bytes == 12_622_168_064
    assert parse_device_memory("RTX4060").total_bytes == 8_318_222_336
    assert parse_device_memory("a100_40gb").total_bytes == 42_474_471_424
    assert {"a100-80gb", "h100-80gb", "h200"} <= set(CARDS)
    assert all(card.source for card in CARDS.values())
    assert RTX3060.with_usable(11 * 2**30).usable == 11 * 2**30
    for bad, message in [("rtx3070", "card name .*rtx3060"), ("12", "unit"), ("0GiB", "more than 0"),
                         ("h100", "did you mean 'h100-80gb'")]:
        with pytest.raises(RevprofError, match=message) as error:
            parse_device_memory(bad)
        assert "\n" not in str(error.value)
