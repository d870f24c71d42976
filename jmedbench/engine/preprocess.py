"""The one mapping from HU to what a model sees, shared by training, evaluation and strategies."""

from __future__ import annotations

import numpy as np

HU_MIN, HU_MAX, HU_SCALE = -1024.0, 3071.0, 1000.0


def hu_to_input(images: np.ndarray) -> np.ndarray:
    """(N, H, W) HU -> (N, 1, H, W) float32: clipped to the CT range, divided by 1000.

    A linear map (no windowing) so that a model can use the full HU range and colour-space
    augmentation acts on the same scale as the scanner's values.
    """
    x = np.clip(images, HU_MIN, HU_MAX, dtype=np.float32) / HU_SCALE
    return x[:, None].astype(np.float32, copy=False)
