"""Imaging the fine-grid anatomy like a CT scanner.

Per slice: the anatomy is drawn on a fine grid (``k`` x ``k`` fine pixels per output pixel,
about 0.4 mm) at ``sub_planes`` heights across the slice thickness and averaged (the slice
sensitivity profile as a box: partial volume along z); the fine plane is integrated over each
output pixel (box sampling), blurred by the rest of the point-spread function (a Gaussian whose
variance adds to the pixel box's to the protocol's ``sigma_mm``), calibrated (site offset and
HU scale above water), and given noise whose power spectrum is a filtered-back-projection ramp
rolled off by the same kernel (NPS ~ |f| exp(-(2 pi sigma f)^2)), at the protocol's dose level.
The image is then rounded to integer HU (CT stores integers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import correlate1d

from jmedbench_phantom.cohort import Site

FINE_TARGET_MM = 0.45
"""Fine-grid pixel at most this size: finer than the kernel's blur at every protocol."""
NOISE_CUTOFFS = (0.08, 0.12, 0.17, 0.24, 0.34, 0.48)
"""Cycles/mm of the noise banks; a protocol uses the nearest to 1 / (2 pi sigma)."""


@dataclass(frozen=True)
class Protocol:
    """One subject's acquisition: what the site's ranges gave this time."""

    slice_mm: float
    sub_planes: int
    sigma_mm: float
    noise_hu: float
    calibration_hu: float
    bone_scale: float

    @property
    def noise_cutoff(self) -> float:
        ideal = 1.0 / (2.0 * math.pi * self.sigma_mm)
        return min(NOISE_CUTOFFS, key=lambda c: abs(math.log(c / ideal)))

    def sub_plane_offsets(self) -> list[float]:
        k = self.sub_planes
        return [self.slice_mm * ((i + 0.5) / k - 0.5) for i in range(k)]

    def to_dict(self) -> dict:
        return {"slice_mm": self.slice_mm, "sigma_mm": round(self.sigma_mm, 3),
                "noise_hu": round(self.noise_hu, 2), "noise_cutoff": self.noise_cutoff,
                "calibration_hu": self.calibration_hu, "bone_scale": self.bone_scale}


DEFAULT_THIN_SLICE_SHARE = 0.0
"""Share of subjects whose study is read as thin slices (dataset option ``thin_slice_share``),
reconstructed from the same acquisition (same dose and kernel): thinner slabs, less partial
volume along z, more noise. 0, the sites' own slices: 0.3 was measured and not adopted
(docs/phantom.md, "Thin-slice reads")."""
THIN_SLICE_MM = (0.625, 1.0, 1.25, 1.5, 2.0)
"""The thin reconstructions' slice thicknesses (one drawn, each as likely): what scanners
offer for bone and for reformats."""
SUB_PLANE_MM = 0.75
"""Spacing of the fine anatomy's sub-planes across a thin slab (at least two)."""


def draw_thin_slice(rng: np.random.Generator, share: float) -> float | None:
    """A thin reconstruction's slice thickness with probability ``share``, else None (the
    site's own). Two draws for every subject, from a generator of its own, so that the rest
    of a subject does not depend on the share."""
    chance, pick = rng.random(2)
    if chance >= share:
        return None
    return THIN_SLICE_MM[int(pick * len(THIN_SLICE_MM))]


def draw_protocol(rng: np.random.Generator, site: Site,
                  thin_slice_mm: float | None = None) -> Protocol:
    """``thin_slice_mm``: read the study as thin slices of this thickness instead of the site's
    (noise SD scaled by sqrt(site thickness / thin thickness): the same photons per voxel
    length)."""
    lo, hi = site.sigma_mm
    sigma = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    noise = rng.uniform(*site.noise_hu)
    slice_mm, planes = site.slice_mm, site.sub_planes
    if thin_slice_mm is not None:
        slice_mm, planes = thin_slice_mm, max(2, math.ceil(thin_slice_mm / SUB_PLANE_MM - 1e-9))
        noise *= math.sqrt(site.slice_mm / thin_slice_mm)
    return Protocol(slice_mm, planes, sigma, noise, site.calibration_hu, site.bone_scale)


def supersampling(pixel_mm: float) -> int:
    """Fine pixels per output pixel (per axis)."""
    return max(1, math.ceil(pixel_mm / FINE_TARGET_MM - 1e-9))


def gaussian_weights(sigma_px: float) -> np.ndarray:
    radius = max(1, math.ceil(2.5 * sigma_px))
    w = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2.0 * sigma_px * sigma_px))
    return (w / w.sum()).astype(np.float32)


def block_average(fine: np.ndarray, k: int) -> np.ndarray:
    """Mean of each k x k block of the last two axes (the output pixel's box integral)."""
    if k == 1:
        return fine.astype(np.float32, copy=True)
    # k strided adds per axis: much faster than numpy's reduction over a length-k axis
    columns = fine[..., 0::k].astype(np.float32, copy=True)
    for j in range(1, k):
        columns += fine[..., j::k]
    out = columns[..., 0::k, :].copy()
    for i in range(1, k):
        out += columns[..., i::k, :]
    out *= 1.0 / (k * k)
    return out


def kernel_weights(protocol: Protocol, pixel_mm: float) -> np.ndarray | None:
    """The Gaussian left after the pixel box (variance pixel^2 / 12) has blurred its share."""
    rest = protocol.sigma_mm ** 2 - pixel_mm ** 2 / 12.0
    if rest <= (0.15 * pixel_mm) ** 2:
        return None
    return gaussian_weights(math.sqrt(rest) / pixel_mm)


def blur(planes: np.ndarray, psf: np.ndarray | None) -> np.ndarray:
    """A separable Gaussian over the last two axes."""
    if psf is None:
        return planes
    out = correlate1d(planes, psf, -2, mode="nearest")
    return correlate1d(out, psf, -1, mode="nearest", output=out)


def calibrate(image: np.ndarray, protocol: Protocol) -> None:
    """In place: the site's HU scale above water (a kVp effect on bone and contrast) and offset."""
    if protocol.bone_scale != 1.0:
        image += (protocol.bone_scale - 1.0) * np.maximum(image, 0.0)
    image += protocol.calibration_hu
