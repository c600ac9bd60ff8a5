"""The on-disk cache of preprocessed cases: hits, invalidation, atomic writes, corruption."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from data_helpers import label_map, make_old_case, write_nii
from revprof.data import PreprocessCache, PreprocessConfig, discover
from revprof.data import cache as cache_module

CONFIG = PreprocessConfig(size=(8, 8, 8))


@pytest.fixture()
def case(tmp_path: Path):
    make_old_case(tmp_path / "data", "BraTS2021_00001", label_map([1, 2, 4]))
    return discover(tmp_path / "data").cases[0]


def _same(a, b) -> None:
    assert a.case_id == b.case_id and a.geometry == b.geometry and a.convention == b.convention
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.regions, b.regions)
    np.testing.assert_array_equal(a.affine, b.affine)
    assert tuple(a.spacing) == tuple(b.spacing)


def test_hit_returns_identical_arrays(tmp_path: Path, case) -> None:
    cache = PreprocessCache(tmp_path / "cache", CONFIG)
    first = cache.get(case)
    second = cache.get(case)
    assert (cache.misses, cache.hits) == (1, 1)
    _same(first, second)
    assert second.image.dtype == np.float32 and second.regions.dtype == np.uint8
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_default_dir_is_under_the_working_directory(tmp_path: Path, case, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cache = PreprocessCache(config=CONFIG)
    cache.get(case)
    assert cache.directory == tmp_path / ".revprof" / "cache"
    assert len(list(cache.directory.glob("*.npz"))) == 1


def test_key_changes_with_settings_and_sources(tmp_path: Path, case) -> None:
    a = PreprocessCache(tmp_path / "c", CONFIG)
    b = PreprocessCache(tmp_path / "c", PreprocessConfig(size=(6, 6, 6)))
    assert a.path_for(case) != b.path_for(case)
    before = a.path_for(case)
    st = case.seg.stat()
    os.utime(case.seg, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert a.path_for(case) != before


def test_source_edit_rebuilds(tmp_path: Path, case) -> None:
    cache = PreprocessCache(tmp_path / "c", CONFIG)
    old = cache.get(case)
    write_nii(case.seg, label_map([2, 2, 2]))
    st = case.seg.stat()
    os.utime(case.seg, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    new = cache.get(case)
    assert cache.misses == 2
    assert old.regions[2].sum() == 1 and new.regions[2].sum() == 0


def test_crash_leftovers_are_ignored_and_truncated_entries_rebuilt(tmp_path: Path, case) -> None:
    cache = PreprocessCache(tmp_path / "c", CONFIG)
    good = cache.get(case)
    path = cache.path_for(case)
    data = path.read_bytes()
    # A run killed mid-write leaves only a temporary file; it is never read as an entry.
    (tmp_path / "c" / f"{cache_module.TEMP_PREFIX}abc.npz").write_bytes(data[:100])
    # A truncated entry (e.g. copied by hand, or a disk failure) is detected and rebuilt.
    path.write_bytes(data[: len(data) // 2])
    assert cache.load(case) is None and not path.exists()
    rebuilt = cache.get(case)
    _same(good, rebuilt)
    assert path.read_bytes() == data
    assert cache.clean_temporary(older_than_s=0) == 1


def test_flipped_byte_is_detected(tmp_path: Path, case) -> None:
    cache = PreprocessCache(tmp_path / "c", CONFIG)
    good = cache.get(case)
    path = cache.path_for(case)
    data = bytearray(path.read_bytes())
    # Corrupt a byte inside the image array's data (the zip CRC catches it).
    offset = bytes(data).find(b"image.npy") + 400
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    assert cache.load(case) is None
    _same(good, cache.get(case))


def test_write_is_atomic(tmp_path: Path, case, monkeypatch) -> None:
    cache = PreprocessCache(tmp_path / "c", CONFIG)
    pre = cache.get(case)
    path = cache.path_for(case)
    path.unlink()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies while writing

    monkeypatch.setattr(cache_module.np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.store(case, pre)
    assert not path.exists()
    assert list((tmp_path / "c").iterdir()) == []
