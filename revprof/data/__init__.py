"""BraTS data: label conventions, loaders for the public release layouts, preprocessing, synthetic cases.

The torch-based patch sampler (``PatchSampler``, ``sample_patch``, ``sliding_window_positions``,
``PAPER_PATCH``) is imported on first use, so the NIfTI side does not pay for importing torch.
"""

from typing import Any

from revprof.data.cache import PreprocessCache, cache_key, default_cache_dir
from revprof.data.check import CaseSummary, CheckReport, check_case, check_dataset
from revprof.data.conventions import CONVENTIONS, REGIONS, LabelConvention, get_convention
from revprof.data.layouts import Case, DatasetIndex, Problem, discover
from revprof.data.nifti import LoadedCase, load_case
from revprof.data.preprocess import (
    PAPER_SIZE,
    Geometry,
    PreprocessConfig,
    PreprocessedCase,
    brain_bbox,
    preprocess_arrays,
    preprocess_case,
    restore_geometry,
    zscore,
)
from revprof.data.split import split_by_patient
from revprof.data.synth import SYNTH_CONVENTIONS, make_phantom, parse_shape, synthesize

__all__ = [
    "CONVENTIONS", "REGIONS", "LabelConvention", "get_convention",
    "Case", "DatasetIndex", "Problem", "discover",
    "LoadedCase", "load_case",
    "PAPER_SIZE", "Geometry", "PreprocessConfig", "PreprocessedCase", "brain_bbox",
    "preprocess_arrays", "preprocess_case", "restore_geometry", "zscore",
    "PreprocessCache", "cache_key", "default_cache_dir",
    "split_by_patient",
    "PAPER_PATCH", "PatchSampler", "sample_patch", "sliding_window_positions",
    "SYNTH_CONVENTIONS", "make_phantom", "parse_shape", "synthesize",
    "CaseSummary", "CheckReport", "check_case", "check_dataset",
]

_LAZY = {"PAPER_PATCH", "PatchSampler", "sample_patch", "sliding_window_positions"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from revprof.data import sampling

        return getattr(sampling, name)
    raise AttributeError(f"module 'revprof.data' has no attribute {name!r}")
