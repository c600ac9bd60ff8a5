"""On-disk cache of preprocessed cases (resampled to the target spacing where needed, cropped,
normalised), so a resampled case is resampled once.

Each entry is one uncompressed ``.npz`` file named by a hash of the case's source files (path,
size, modification time), its label convention and the preprocessing settings, so editing a
source file or a setting makes a new entry. Entries are written to a temporary file in the cache
folder, flushed to disk and renamed into place (``os.replace``), so a killed run never leaves a
half-written entry under a real name. An entry that cannot be read back (truncated, corrupt,
wrong key) is deleted and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from revprof.bounds import replace_file
from revprof.data.layouts import Case
from revprof.data.nifti import load_case
from revprof.data.preprocess import Geometry, PreprocessConfig, PreprocessedCase, preprocess_case
from revprof.errors import RevprofError

FORMAT_VERSION = 2
"""Bumped whenever the entry format or the preprocessing code changes meaning."""

TEMP_PREFIX = ".tmp-"


def default_cache_dir() -> Path:
    """``.revprof/cache`` under the current working directory."""
    return Path.cwd() / ".revprof" / "cache"


def cache_key(case: Case, config: PreprocessConfig) -> str:
    """Hex digest identifying ``case`` preprocessed with ``config``.

    Raises:
        RevprofError: a source file is missing.
    """
    sources = []
    for path in case.files:
        try:
            stat = path.stat()
        except OSError:
            raise RevprofError(f"case {case.case_id}: file {path} does not exist") from None
        sources.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    payload = {
        "version": FORMAT_VERSION,
        "case_id": case.case_id,
        "convention": case.convention,
        "packed": case.packed,
        "sources": sources,
        "config": config.as_dict(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class PreprocessCache:
    """Preprocessed cases stored under ``directory``.

    Args:
        directory: cache folder (created on first write); default :func:`default_cache_dir`.
        config: preprocessing settings for :meth:`get`.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None,
                 config: PreprocessConfig = PreprocessConfig()) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.config = config
        self.hits = 0
        self.misses = 0

    def path_for(self, case: Case) -> Path:
        """Where ``case``'s entry lives."""
        return self.directory / f"{_safe(case.case_id)}-{cache_key(case, self.config)[:32]}.npz"

    def load(self, case: Case) -> PreprocessedCase | None:
        """The cached entry for ``case``, or None when absent or unreadable (then deleted)."""
        path = self.path_for(case)
        if not path.is_file():
            return None
        try:
            return _read_entry(path, cache_key(case, self.config))
        except Exception:
            try:
                path.unlink()
            except OSError:
                pass
            return None

    def store(self, case: Case, pre: PreprocessedCase) -> Path:
        """Write ``pre`` atomically as ``case``'s entry and return its path."""
        path = self.path_for(case)
        _write_entry(path, cache_key(case, self.config), pre)
        return path

    def get(self, case: Case) -> PreprocessedCase:
        """Load ``case`` from the cache, or from NIfTI (preprocessing and caching it)."""
        cached = self.load(case)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        pre = preprocess_case(load_case(case), self.config)
        self.store(case, pre)
        return pre

    def clean_temporary(self, older_than_s: float = 3600.0) -> int:
        """Delete temporary files that killed runs left behind; return how many."""
        if not self.directory.is_dir():
            return 0
        removed = 0
        now = time.time()
        for path in self.directory.glob(f"{TEMP_PREFIX}*"):
            try:
                if now - path.stat().st_mtime >= older_than_s:
                    path.unlink()
                    removed += 1
            except OSError:
                pass
        return removed


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:80]


def _write_entry(path: Path, key: str, pre: PreprocessedCase) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "key": key,
        "version": FORMAT_VERSION,
        "case_id": pre.case_id,
        "convention": pre.convention,
        "spacing": list(pre.spacing),
        "geometry": pre.geometry.as_dict(),
        "has_regions": pre.regions is not None,
        "source_shape": list(pre.source_shape) if pre.source_shape else None,
        "grid_spacing": list(pre.grid_spacing) if pre.grid_spacing else None,
    }
    arrays: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps(meta)),
        "image": np.ascontiguousarray(pre.image, dtype=np.float32),
        "affine": np.asarray(pre.affine, dtype=np.float64),
    }
    if pre.regions is not None:
        arrays["regions"] = np.ascontiguousarray(pre.regions, dtype=np.uint8)
    replace_file(path, lambda temporary: np.savez(temporary, **arrays),  # type: ignore[arg-type]  # numpy's stub takes **kwds as allow_pickle
                 prefix=TEMP_PREFIX,
                 suffix=".npz")


def _read_entry(path: Path, key: str) -> PreprocessedCase:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"][()]))
        if meta.get("key") != key or meta.get("version") != FORMAT_VERSION:
            raise ValueError("stale cache entry")
        image = data["image"]
        affine = data["affine"]
        regions = data["regions"] if meta["has_regions"] else None
    geometry = Geometry.from_dict(meta["geometry"])
    if image.shape[1:] != geometry.shape or (regions is not None and regions.shape[1:] != geometry.shape):
        raise zipfile.BadZipFile("array shapes disagree with the stored geometry")
    return PreprocessedCase(
        case_id=meta["case_id"], image=image, regions=regions, geometry=geometry,
        affine=affine, spacing=tuple(meta["spacing"]), convention=meta["convention"],
        source_shape=tuple(meta["source_shape"]) if meta.get("source_shape") else None,
        grid_spacing=tuple(meta["grid_spacing"]) if meta.get("grid_spacing") else None,
    )


__all__ = ["FORMAT_VERSION", "PreprocessCache", "cache_key", "default_cache_dir"]
