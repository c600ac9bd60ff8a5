"""torchvision's model definitions without its compiled operators: the one place revprof works
around torchvision's import.

Why this exists: torchvision's networks (``torchvision.models``) are plain Python, but
``import torchvision`` needs its compiled library ``_C`` first. Its wheels are built for one torch
build; where ``_C`` does not load (a CUDA torchvision wheel beside the CPU torch these machines
have, torch 2.13 + torchvision 0.28), torchvision carries on without its detection operators
(``nms``, ``roi_align``, ...) — except that ``torchvision/_meta_registrations.py`` then calls
``torch.library.register_fake("torchvision::nms")`` (and ``qnms``) unconditionally, and that fails
with ``RuntimeError: operator torchvision::nms does not exist``, so nothing of torchvision imports.

What it does: :func:`ensure_torchvision_importable` first imports torchvision as it is. Only when
that fails for a missing ``torchvision::`` operator does it define torchvision's operator schemas
(those the 0.28 C++ defines with ``TORCH_LIBRARY_FRAGMENT(torchvision, m)``, :data:`SCHEMAS`),
each with a kernel that raises a :class:`~revprof.errors.RevprofError` saying why if it is ever
run, then imports torchvision again. Where torchvision imports (a GPU user's working install),
it does nothing at all: the real operators and the real import path are kept.

Why it is fragile: it relies on private behaviour of torchvision (which operators its Python side
registers fake kernels for, the names of their arguments) and on forgetting the modules a failed
import left behind. ``tests/test_torchvision.py`` fails loudly when torchvision changes either:
an operator its Python registers that is not in :data:`SCHEMAS`, argument names that differ from
its fake kernels', or a torchvision that imports without its compiled library and no longer needs
this module.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from typing import Literal, NoReturn

import torch

from revprof.errors import RevprofError, first_line

TorchvisionState = Literal["not-installed", "untouched", "stubbed"]
"""What :func:`ensure_torchvision_importable` found: torchvision is not installed; it imported as
it is (revprof did nothing); or revprof defined its operator schemas for it (:data:`SCHEMAS`)."""

SCHEMAS: tuple[str, ...] = (
    # torchvision 0.28 torchvision/csrc/ops/nms.cpp, quantized/cpu/qnms_kernel.cpp
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    # roi_align.cpp, quantized/cpu/qroi_align_kernel.cpp
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "qroi_align(Tensor input, Tensor rois, float input_scale, int input_zero_point, float rois_scale, "
    "int rois_zero_point, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    # ps_roi_align.cpp
    "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size, "
    "SymInt channels, SymInt height, SymInt width) -> Tensor",
    # roi_pool.cpp
    "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, "
    "SymInt width) -> Tensor",
    # ps_roi_pool.cpp
    "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, "
    "SymInt width) -> Tensor",
    # deform_conv2d.cpp
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
    "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
    "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask, "
    "Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
    "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) "
    "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    # box_iou_rotated.cpp
    "box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor",
)
"""torchvision's operator schemas, as its compiled library defines them (namespace ``torchvision``;
torchvision 0.28, ``torchvision/csrc/ops/*.cpp``, read from the 0.28 wheel's ``_C.so``)."""

_MISSING_OPERATOR = re.compile(r"operator torchvision::\w+ does not exist")
_KERNEL_KEYS = ("CPU", "CUDA")  # not Meta: torchvision registers its own fake kernels there
_library: torch.library.Library | None = None  # kept alive: the definitions last as long as it does


def operator_name(schema: str) -> str:
    """``"nms(Tensor dets, ...) -> Tensor"`` -> ``"nms"``."""
    return schema.split("(", 1)[0]


def ensure_torchvision_importable() -> TorchvisionState:
    """Make ``import torchvision`` (and ``torchvision.models``) work, also where torchvision's
    compiled operators do not load; see the module docstring.

    Returns:
        ``"not-installed"`` (nothing done; importing torchvision raises ``ModuleNotFoundError`` as
        usual), ``"untouched"`` (torchvision imported as it is) or ``"stubbed"`` (revprof defined
        torchvision's operator schemas first; its detection operators raise when run).

    Raises:
        RevprofError: torchvision does not import even with the schemas defined (a torchvision
            this module does not know).
        RuntimeError: torchvision's import failed for another reason (its own message).
    """
    if _library is not None:
        return "stubbed"
    if "torchvision" in sys.modules:
        return "untouched"
    if importlib.util.find_spec("torchvision") is None:
        return "not-installed"
    try:
        importlib.import_module("torchvision")
        return "untouched"
    except RuntimeError as error:
        if not _MISSING_OPERATOR.search(str(error)):
            raise
    _define_schemas()
    _forget_partial_import()
    try:
        importlib.import_module("torchvision")
    except Exception as error:
        raise RevprofError(f"torchvision does not import without its compiled operators even with "
                           f"their schemas defined by revprof (revprof/nn/_torchvision.py knows "
                           f"torchvision 0.28): {first_line(error, with_type=True)}") from None
    return "stubbed"


def _define_schemas() -> None:
    """Define every schema of :data:`SCHEMAS` in the ``torchvision`` namespace with a raising
    kernel, skipping any operator that already exists."""
    global _library
    library = torch.library.Library("torchvision", "FRAGMENT")
    for schema in SCHEMAS:
        name = operator_name(schema)
        if hasattr(torch.ops.torchvision, name):  # defined by someone else: theirs is kept
            continue
        library.define(schema)
        for key in _KERNEL_KEYS:
            library.impl(name, _unavailable(name), key)
    _library = library


def _unavailable(name: str) -> Callable[..., NoReturn]:
    """A kernel for ``torchvision::name`` that says why it cannot run."""

    def kernel(*args: object, **kwargs: object) -> NoReturn:
        raise RevprofError(f"torchvision::{name} cannot run here: torchvision's compiled operators "
                           f"did not load against this torch (its wheel is built for another torch), "
                           f"and revprof defined the operator only so that torchvision.models "
                           f"imports; install the torchvision built for torch {torch.__version__}")

    return kernel


def _forget_partial_import() -> None:
    """Drop the torchvision submodules a failed ``import torchvision`` left in ``sys.modules``, so
    the next import runs torchvision's ``__init__`` from the start."""
    for module in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[module]
