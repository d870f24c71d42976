"""Correlated random fields: scanner noise and trabecular texture.

Filtering fresh white noise for every slice would cost more than drawing the anatomy, so each
site keeps a small bank of large fields (made once per dataset from its seed) and a slice takes
a randomly placed, flipped and signed crop. Fields have zero mean and unit standard deviation.

Noise power spectrum: a ramp (filtered back projection) rolled off by the kernel,
|f| * exp(-(f / cutoff)^2), so a sharper kernel gives finer and a softer kernel coarser grain.
Trabecular texture: a band-pass around the apparent trabecular spacing (about 2-3 mm on CT).
"""

from __future__ import annotations

import numpy as np
import scipy.fft


def _radial_frequency(n: int, pixel_mm: float) -> np.ndarray:
    fy = np.fft.fftfreq(n, d=pixel_mm)[:, None]
    fx = np.fft.rfftfreq(n, d=pixel_mm)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def filtered_fields(rng: np.random.Generator, count: int, n: int, transfer: np.ndarray
                    ) -> np.ndarray:
    """``count`` (n, n) float32 fields: white noise filtered by ``transfer`` (rfft layout)."""
    white = rng.standard_normal((count, n, n), dtype=np.float32)
    fields = scipy.fft.irfft2(scipy.fft.rfft2(white) * transfer.astype(np.float32), s=(n, n))
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    fields /= fields.std(axis=(1, 2), keepdims=True)
    return fields.astype(np.float32)


class FieldBank:
    """Crops of pre-filtered fields; ``crop(rng)`` gives one (size, size) field."""

    def __init__(self, fields: np.ndarray, size: int) -> None:
        self.fields = fields
        self.size = size

    def crop(self, rng: np.random.Generator, shape: tuple[int, int] | None = None
             ) -> np.ndarray:
        """A (size, size) crop, or ``shape`` (at most the bank's field size)."""
        k, n = self.fields.shape[0], self.fields.shape[1]
        h, w = shape or (self.size, self.size)
        h, w = min(h, n), min(w, n)
        r = rng.random(4)
        i, flips = int(r[0] * k), int(r[3] * 8)
        y, x = int(r[1] * (n - h + 1)), int(r[2] * (n - w + 1))
        field = self.fields[i, y:y + h, x:x + w]
        if flips & 1:
            field = field[::-1]
        if flips & 2:
            field = field[:, ::-1]
        return -field if flips & 4 else field


def noise_bank(rng: np.random.Generator, size: int, pixel_mm: float, cutoff: float,
               count: int = 4) -> FieldBank:
    n = 2 * size
    f = _radial_frequency(n, pixel_mm)
    return FieldBank(filtered_fields(rng, count, n, f * np.exp(-(f / cutoff) ** 2)), size)


def trabecular_bank(rng: np.random.Generator, size: int, pixel_mm: float, count: int = 3
                    ) -> FieldBank:
    """Trabecular texture on the fine grid: trabeculae (0.1-0.2 mm) are far below CT's
    resolution, but their density varies over the marrow spaces (0.5-1.5 mm) and over clusters
    of a few millimetres; what a scanner shows is that variation blurred. Two bands (around 0.7
    and 0.25 cycles/mm), then a skew towards dense clusters (bright spots in real CT)."""
    n = 2 * size
    f = _radial_frequency(n, pixel_mm)
    transfer = (np.exp(-((f - 0.7) / 0.35) ** 2) + 0.8 * np.exp(-((f - 0.25) / 0.12) ** 2))
    fields = filtered_fields(rng, count, n, transfer)
    fields = fields + 0.45 * (fields * fields - 1.0)
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    fields /= fields.std(axis=(1, 2), keepdims=True)
    return FieldBank(fields.astype(np.float32), size)
