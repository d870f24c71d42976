"""A small parallel-beam CT projector for the projection-domain corruptions (low dose, metal,
rings, beam hardening, motion).

``skimage.transform.radon`` rotates the whole image once per angle, which costs about 0.2 s per
128 x 128 slice on one core; a corruption applied to every test slice at five severities cannot
afford that. Both radon and filtered back-projection are linear maps on a fixed grid, so this
module builds the (sparse) projection matrix once per image shape and number of angles and
reuses it: a pixel-driven projector with linear interpolation onto unit-width detector bins.
Filtered back-projection follows ``skimage.transform.iradon`` (its ramp filter on a
zero-padded sinogram, times ``pi / (2 * n_angles)``), with an optional Hann window (the smooth
"standard" reconstruction kernel). ``tests/test_corruptions.py`` checks the sinogram and the
reconstruction against scikit-image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy import ndimage as ndi

MU_WATER_PER_MM = 0.0193
"""Linear attenuation of water near 70 keV (NIST XCOM), the effective energy of a 120 kVp scan."""

NOMINAL_FOV_MM = 350.0
"""Field of view assumed for a slice (its spacing is not passed to a corruption): a typical
adult abdominal reconstruction, so path lengths and hence photon counts are those of an adult."""


def hu_to_mu(hu: np.ndarray) -> np.ndarray:
    """HU -> linear attenuation per mm (air, HU -1000, is 0)."""
    return np.maximum(MU_WATER_PER_MM * (1.0 + hu / 1000.0), 0.0)


def mu_to_hu(delta_mu: np.ndarray) -> np.ndarray:
    """A change of attenuation per mm -> the same change in HU."""
    return 1000.0 * delta_mu / MU_WATER_PER_MM


@dataclass(frozen=True)
class Projector:
    """Radon transform and filtered back-projection on an (H, W) grid for ``n_angles`` angles
    over [0, 180) degrees. Sinograms are (n_angles, n_det) with row k the projection at angle k.
    """

    shape: tuple[int, int]
    n_angles: int
    n_det: int
    matrix: sp.csr_matrix          # (n_angles * n_det, H * W), float32
    pixel_mm: float

    def forward(self, image: np.ndarray) -> np.ndarray:
        """Line integrals of ``image`` (per mm units times ``pixel_mm`` give dimensionless)."""
        flat = np.asarray(image, np.float32).reshape(-1)
        sinogram = (self.matrix @ flat).astype(np.float64)
        return sinogram.reshape(self.n_angles, self.n_det) * self.pixel_mm

    def translate(self, sinogram: np.ndarray, rows: np.ndarray, cols: np.ndarray
                  ) -> np.ndarray:
        """The sinogram of the object moved by (``rows[k]``, ``cols[k]``) pixels (down, right)
        while projection ``k`` was taken. A parallel-beam projection of a translated object is
        the projection translated along the detector by the shift's component on it, so no
        re-projection is needed."""
        theta = np.arange(self.n_angles) * np.pi / self.n_angles
        along = np.asarray(cols) * np.cos(theta) - np.asarray(rows) * np.sin(theta)
        k, t = np.mgrid[0:self.n_angles, 0:self.n_det].astype(np.float64)
        return ndi.map_coordinates(sinogram, [k, t - along[:, None]], order=1, mode="constant")

    def back(self, sinogram: np.ndarray) -> np.ndarray:
        """Unfiltered back-projection (the adjoint of :meth:`forward` without the pixel size)."""
        flat = np.asarray(sinogram, np.float32).reshape(-1)
        return (self.matrix.T @ flat).astype(np.float64).reshape(self.shape)

    def fbp(self, sinogram: np.ndarray, window: str = "hann") -> np.ndarray:
        """Filtered back-projection of a sinogram of line integrals -> attenuation per mm."""
        filtered = ramp_filter(np.asarray(sinogram, np.float64), window)
        return self.back(filtered) * (np.pi / (2 * self.n_angles)) / self.pixel_mm


def ramp_filter(sinogram: np.ndarray, window: str = "hann") -> np.ndarray:
    """Filter each projection (row) with the ramp, zero-padded, as scikit-image does: the ramp
    is the Fourier transform of its band-limited spatial kernel (Kak & Slaney eq. 61), which
    keeps the right response near zero frequency (a plain ``2|f|`` loses the mean)."""
    n_det = sinogram.shape[1]
    size = max(64, int(2 ** np.ceil(np.log2(2 * n_det))))
    odd = np.concatenate((np.arange(1, size / 2 + 1, 2, dtype=int),
                          np.arange(size / 2 - 1, 0, -2, dtype=int)))
    kernel = np.zeros(size)
    kernel[0] = 0.25
    kernel[1::2] = -1 / (np.pi * odd) ** 2
    response = 2 * np.real(np.fft.fft(kernel))
    if window == "hann":
        response *= 0.5 + 0.5 * np.cos(2 * np.pi * np.fft.fftfreq(size))  # 0 at Nyquist
    elif window != "ramp":
        raise ValueError(f"unknown reconstruction window {window!r}")
    spectrum = np.fft.fft(sinogram, n=size, axis=1) * response
    return np.real(np.fft.ifft(spectrum, axis=1))[:, :n_det]


@lru_cache(maxsize=8)
def projector(height: int, width: int, n_angles: int | None = None) -> Projector:
    """The projector for one image shape (built once, cached). Angles default to about one per
    detector bin over 180 degrees, rounded to a multiple of 16 (so motion can use 16 blocks)."""
    n_det = int(np.ceil(np.hypot(height, width))) + 3
    if n_angles is None:
        n_angles = max(32, int(round(max(height, width) / 16)) * 16)
    theta = np.deg2rad(np.arange(n_angles) * 180.0 / n_angles)
    # Pixel centres relative to the rotation centre (row H//2, column W//2, as scikit-image),
    # y pointing up; at angle 0 every pixel falls on one detector bin exactly.
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    x = (xs - width // 2).reshape(-1)
    y = (height // 2 - ys).reshape(-1)
    centre = n_det // 2
    n_pix = height * width
    pixel_index = np.arange(n_pix)
    rows, cols, vals = [], [], []
    for k, angle in enumerate(theta):
        # A unit pixel seen at this angle casts a trapezoid |cos|+|sin| bins wide; a triangle
        # of that half-width (normalised) stands in for it. Plain linear interpolation
        # (half-width 1) aliases near 45 degrees and leaves spikes in the sinogram.
        half = abs(np.cos(angle)) + abs(np.sin(angle))
        t = x * np.cos(angle) + y * np.sin(angle) + centre
        first = np.floor(t - half).astype(np.int64) + 1
        weights = []
        for j in range(3):
            weights.append(np.maximum(0.0, 1.0 - np.abs(first + j - t) / half))
        total = weights[0] + weights[1] + weights[2]
        for j in range(3):
            keep = weights[j] > 0
            rows.append(k * n_det + first[keep] + j)
            cols.append(pixel_index[keep])
            vals.append(weights[j][keep] / total[keep])
    matrix = sp.csr_matrix((np.concatenate(vals).astype(np.float32),
                            (np.concatenate(rows), np.concatenate(cols))),
                           shape=(n_angles * n_det, n_pix))
    return Projector((height, width), n_angles, n_det, matrix, NOMINAL_FOV_MM / max(height, width))
