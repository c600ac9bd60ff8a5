"""Inference on whole preprocessed volumes: directly when they fit, else by sliding window."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from revprof.nn.unet import UNet3D
from revprof.spec import Precision
from revprof.step import autocast_for

WHOLE_VOLUME_FACTOR = 4
"""A volume up to this many patch volumes is run in one pass; larger ones by sliding window."""


def _pad_amounts(shape: Sequence[int], multiple: int, minimum: Sequence[int]) -> list[int]:
    pads = []
    for size, least in zip(shape, minimum, strict=True):
        target = max(least, -(-size // multiple) * multiple)
        pads.append(target - size)
    return pads


@torch.no_grad()
def predict_volume(model: UNet3D, image: np.ndarray, patch: Sequence[int], levels: int,
                   device: torch.device, precision: Precision = "fp32", overlap: float = 0.5,
                   on_window: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Sigmoid probabilities for a whole volume.

    Args:
        image: ``(C, D, H, W)`` preprocessed image.
        patch: the training patch; windows have this size.
        levels: network levels (each axis is padded to a multiple of ``2**(levels-1)``).
        on_window: called with ``(done, total)`` windows after each forward pass (progress).

    Returns:
        float32 ``(out_channels, D, H, W)``.
    """
    from revprof.data import sliding_window_positions

    model.eval()
    shape = image.shape[1:]
    multiple = 2 ** (levels - 1)
    whole = int(np.prod(shape)) <= WHOLE_VOLUME_FACTOR * int(np.prod(patch))
    pads = _pad_amounts(shape, multiple, (1, 1, 1) if whole else patch)
    x = torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0).to(device)
    # F.pad takes (last axis first) pairs; pad at the far end only so indices stay aligned
    x = F.pad(x, [0, pads[2], 0, pads[1], 0, pads[0]])
    with autocast_for(precision, device.type):
        if whole:
            probs = model(x)[0].float()
            if on_window is not None:
                on_window(1, 1)
        else:
            padded = x.shape[2:]
            probs = torch.zeros((model.spec.out_channels, *padded), device=device)
            counts = torch.zeros(padded, device=device)
            positions = sliding_window_positions(padded, patch, overlap)
            for done, (d, h, w) in enumerate(positions, 1):
                window = (slice(d, d + patch[0]), slice(h, h + patch[1]), slice(w, w + patch[2]))
                probs[(slice(None), *window)] += model(x[(slice(None), slice(None), *window)])[0].float()
                counts[window] += 1
                if on_window is not None:
                    on_window(done, len(positions))
            probs /= counts
    model.train()
    return probs[:, : shape[0], : shape[1], : shape[2]].cpu().numpy()
