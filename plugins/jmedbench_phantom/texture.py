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

    def crop(self, rng: np.random.Generator) -> np.ndarray:
        k, n = self.fields.shape[0], self.fields.shape[1]
        r = rng.random(4)
        i, flips = int(r[0] * k), int(r[3] * 8)
        y, x = int(r[1] * (n - self.size + 1)), int(r[2] * (n - self.size + 1))
        field = self.fields[i, y:y + self.size, x:x + self.size]
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
    n = 2 * size
    f = _radial_frequency(n, pixel_mm)
    centre, width = 0.35, 0.15  # cycles/mm: a trabecular pattern of ~3 mm as CT renders it
    return FieldBank(filtered_fields(rng, count, n, np.exp(-((f - centre) / width) ** 2)), size)
