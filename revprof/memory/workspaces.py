"""What CUDA's BLAS libraries take through the caching allocator without a tensor to show for it:
the cuBLAS workspace (kept for the life of the process) and cuBLASLt's (taken and given back
around each fused ``addmm``), as events added to a tracker's allocation log.

The tracker (:mod:`revprof.memory.tracker`) sees storages; these two workspaces are raw
allocations torch makes from the caching allocator, so a CPU or simulated run never logs them,
while on a GPU they are in ``memory_reserved`` and in what NVML reports. Sources (torch 2.6, the
release of the real-GPU ground truth, and unchanged in the parts used here up to 2.13 unless said):

- ``aten/src/ATen/cuda/CublasHandlePool.cpp``: ``getCurrentCUDABlasHandle()`` takes, the first
  time it runs for a (handle, stream) pair, ``getChosenWorkspaceSize()`` bytes from
  ``CUDACachingAllocator`` and keeps them in a map for the life of the process
  (``cublasSetWorkspace``). Without ``CUBLAS_WORKSPACE_CONFIG`` the size is
  ``4096 KiB * 2 + 16 KiB * 8`` = 8,519,680 bytes, and ``4096 KiB * 8`` = 32 MiB on sm_90
  (Hopper; later torch releases also on sm_100 and sm_120). With one thread and one stream that
  is one block, allocated at the first cuBLAS call (the first matmul) and never freed.
- ``aten/src/ATen/cuda/CUDABlas.cpp``: ``gemm_and_bias`` (the cuBLASLt path of ``addmm`` with a
  1-D bias, a ``Linear`` on a 2-D input) allocates ``CUBLASLT_WORKSPACE_SIZE`` KiB (default 1024)
  for the call and frees it after; torch 2.6 does not share it with the cuBLAS workspace (that came
  with ``TORCH_CUBLASLT_UNIFIED_WORKSPACE``, on by default late in 2025).

cuDNN's convolution workspaces also go through the allocator, but their sizes are chosen by cuDNN
per GPU and version and cannot be derived on a CPU; they are not added here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from revprof.memory.allocator import Event

MiB = 2**20

CUBLAS_WORKSPACE_BYTES = 4096 * 1024 * 2 + 16 * 1024 * 8
"""torch's default cuBLAS workspace (``:4096:2:16:8``): 8,519,680 bytes, every GPU but sm_90."""
CUBLAS_WORKSPACE_BYTES_SM90 = 4096 * 1024 * 8
"""torch's default cuBLAS workspace on sm_90 (Hopper, ``:4096:8``): 32 MiB."""
CUBLASLT_WORKSPACE_BYTES = 1024 * 1024
"""torch 2.6's default cuBLASLt workspace per fused ``addmm`` call (``CUBLASLT_WORKSPACE_SIZE``)."""

CUBLAS_OPS: tuple[str, ...] = ("aten.addmm.", "aten.mm.", "aten.bmm.", "aten.baddbmm.",
                               "aten.addbmm.", "aten.addmv.", "aten.mv.", "aten.dot.", "aten.vdot.")
"""aten ops (name prefixes, as the tracker logs them) that run on cuBLAS on a GPU."""
LT_OPS: tuple[str, ...] = ("aten.addmm.",)
"""aten ops that take cuBLASLt's per-call workspace (``addmm`` with a bias: ``Linear``)."""


def cublas_workspace_bytes(capability: tuple[int, int]) -> int:
    """torch 2.6's default cuBLAS workspace on a GPU of compute ``capability`` ``(major, minor)``:
    32 MiB on sm_90, else 8,519,680 bytes (``CUBLAS_WORKSPACE_CONFIG`` unset)."""
    return CUBLAS_WORKSPACE_BYTES_SM90 if tuple(capability) == (9, 0) else CUBLAS_WORKSPACE_BYTES


def with_blas_workspaces(log: Sequence[tuple[str, int, int, str, int]], workspace_bytes: int,
                         lt_workspace_bytes: int = CUBLASLT_WORKSPACE_BYTES) -> list[Event]:
    """A tracker's detailed allocation log (``MemoryReport.allocation_log``: ``(action, id,
    nbytes, op, index)``) as replay events, with the BLAS workspaces a GPU run adds: after the
    output of the first cuBLAS op (:data:`CUBLAS_OPS`), one ``workspace_bytes`` allocation that is
    never freed; after the output of each :data:`LT_OPS` call, ``lt_workspace_bytes`` allocated
    and freed (0: none). Without a cuBLAS op the log is returned unchanged.

    Args:
        log: the detailed log, in order.
        workspace_bytes: the cuBLAS workspace (:func:`cublas_workspace_bytes`).
        lt_workspace_bytes: cuBLASLt's per-call workspace.

    Returns:
        ``("alloc", id, nbytes)`` / ``("free", id, 0)`` events for
        :func:`revprof.memory.allocator.replay`; the added ids follow the log's largest.
    """
    next_id = max((entry[1] for entry in log), default=0) + 1
    events: list[Event] = []
    blas_seen = False
    for action, key, nbytes, op, _ in log:
        events.append((action, key, nbytes))
        if action != "alloc":
            continue
        if not blas_seen and op.startswith(CUBLAS_OPS):
            blas_seen = True
            events.append(("alloc", next_id, workspace_bytes))
            next_id += 1
        if lt_workspace_bytes and op.startswith(LT_OPS):
            events += [("alloc", next_id, lt_workspace_bytes), ("free", next_id, 0)]
            next_id += 1
    return events


def blas_ops_in(log: Iterable[tuple[str, int, int, str, int]]) -> int:
    """How many allocations in ``log`` came from cuBLAS ops (0: the run never calls cuBLAS)."""
    return sum(1 for action, _, _, op, _ in log if action == "alloc" and op.startswith(CUBLAS_OPS))
