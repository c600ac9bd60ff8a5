"""The one private torch call the CUDA measurement makes, kept here so it is easy to find.

torch has no public way to free the cuBLAS workspaces a process has created (8–32 MiB each, held
per handle and stream until the process ends); ``torch._C._cuda_clearCublasWorkspaces`` is what
``torch.cuda`` itself calls. A workspace left by earlier work would otherwise sit in every
measured peak. CPU builds of torch do not have it, and then there is nothing to clear.
``tests/test_gpu.py::test_private_cublas_clear_still_exists`` fails loudly on a CUDA build that
drops it.
"""

from __future__ import annotations

import torch

_CLEAR_NAME = "_cuda_clearCublasWorkspaces"


def clear_cublas_workspaces() -> bool:
    """Free the process's cuBLAS workspaces; ``False`` when this torch build has no such call."""
    clear = getattr(torch._C, _CLEAR_NAME, None)
    if clear is None:
        return False
    clear()
    return True
