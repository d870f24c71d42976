"""Pieces shared by the corruption families: the severity wrapper that makes every corruption a
:class:`~jmedbench.specs.CorruptionSpec`, intensity scales, kernels, warps and codecs."""

from __future__ import annotations

import io
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from jmedbench.specs import CorruptionSpec

SEVERITIES = 5
HU_MIN, HU_MAX = -1024.0, 3071.0
REFERENCE_SIZE = 224
"""Spatial parameters taken from ImageNet-C / MedMNIST-C are given for 224-pixel images and
scaled by ``size / 224``, so a blur covers the same fraction of the field of view at any size."""

Apply = Callable[[np.ndarray, np.ndarray, Any, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def corruption(name: str, family: str, params: Sequence[Any], description: str,
               citation: str, *, geometric: bool = False, density: str = "hu"
               ) -> Callable[[Apply], CorruptionSpec]:
    """Decorator: ``fn(image, label, param, rng) -> (image, label)`` with one ``param`` per
    severity 1..5 becomes a spec whose ``apply`` checks its input, returns copies unchanged at
    severity 0 and float32 / uint8 results of the input's shape."""
    if len(params) != SEVERITIES:
        raise ValueError(f"corruption {name}: {len(params)} severity parameters, expected "
                         f"{SEVERITIES}")

    def wrap(fn: Apply) -> CorruptionSpec:
        def apply(image: np.ndarray, label: np.ndarray, severity: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            image = np.asarray(image)
            label = np.asarray(label)
            if image.ndim != 2 or image.shape != label.shape:
                raise ValueError(f"{name}: image {image.shape} and label {label.shape} must be "
                                 "equal (H, W) arrays")
            if isinstance(severity, bool) or int(severity) != severity or not (
                    0 <= severity <= SEVERITIES):
                raise ValueError(f"{name}: severity {severity!r} must be an integer "
                                 f"0..{SEVERITIES}")
            if severity == 0:
                return image.astype(np.float32, copy=True), label.astype(np.uint8, copy=True)
            out, out_label = fn(image.astype(np.float32), label.astype(np.uint8),
                                params[int(severity) - 1], rng)
            out = np.nan_to_num(np.asarray(out, np.float64), nan=HU_MIN)
            return (np.clip(out, HU_MIN, HU_MAX).astype(np.float32),
                    np.asarray(out_label).astype(np.uint8))

        apply.__name__ = f"apply_{name}"
        apply.__doc__ = fn.__doc__
        apply.params = tuple(params)  # type: ignore[attr-defined]
        return CorruptionSpec(name=name, family=family, apply=apply, description=description,
                              citation=citation, severities=SEVERITIES, geometric=geometric,
                              density=density)  # type: ignore[arg-type]

    return wrap


# -- intensity scales ------------------------------------------------------------------------
def hu_to_unit(hu: np.ndarray) -> np.ndarray:
    """HU -> [0, 1] over the 12-bit CT range (-1024..3071), the scale the model's own input
    clipping uses; classic corruptions act on this as on a [0, 1] photograph."""
    return (np.asarray(hu, np.float64) - HU_MIN) / (HU_MAX - HU_MIN)


def unit_to_hu(unit: np.ndarray) -> np.ndarray:
    return np.asarray(unit, np.float64) * (HU_MAX - HU_MIN) + HU_MIN


def window(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """HU -> display drive value in [0, 1] for a window (level, width)."""
    return np.clip((np.asarray(hu, np.float64) - (level - width / 2)) / width, 0.0, 1.0)


def scaled(value: float, shape: tuple[int, ...]) -> float:
    """A length given for a 224-pixel image, at this image's size."""
    return float(value) * max(shape) / REFERENCE_SIZE


# -- kernels and filters ---------------------------------------------------------------------
def disk_kernel(radius: float, alias_blur: float = 0.5) -> np.ndarray:
    """A normalised disk (defocus point-spread function), each pixel weighted by the part of it
    the disk covers (8 x 8 sub-samples, so the kernel grows smoothly with the radius, also
    below one pixel), softened by a small Gaussian as in ImageNet-C's ``disk``."""
    half = max(1, int(np.ceil(radius + 0.5)))
    sub = (np.arange(8) + 0.5) / 8 - 0.5
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    ys = yy[..., None, None] + sub[:, None]
    xs = xx[..., None, None] + sub[None, :]
    kernel = ((xs ** 2 + ys ** 2) <= radius ** 2).mean(axis=(-1, -2))
    kernel[half, half] = max(kernel[half, half], 1e-12)  # radius 0: the identity
    if alias_blur > 0:
        kernel = ndi.gaussian_filter(kernel, alias_blur)
    return kernel / kernel.sum()


def line_kernel(length: float, sigma: float, angle_deg: float) -> np.ndarray:
    """Motion-blur kernel: Gaussian weights (``sigma``) along a line of ``length`` pixels at an
    angle, as ImageMagick's motion blur used by ImageNet-C, but centred on its centroid so the
    blur does not shift the anatomy against its label map."""
    n = max(2, int(np.ceil(length)) + 1)
    steps = np.arange(n, dtype=np.float64)
    weights = np.exp(-steps ** 2 / (2 * max(sigma, 1e-3) ** 2))
    return _kernel_from_path(steps * np.cos(np.deg2rad(angle_deg)),
                             steps * np.sin(np.deg2rad(angle_deg)), weights)


def _kernel_from_path(dx: np.ndarray, dy: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Splat weighted points (dx, dy) bilinearly into a kernel centred on their centroid."""
    weights = weights / weights.sum()
    dx = dx - np.sum(dx * weights)
    dy = dy - np.sum(dy * weights)
    half = int(np.ceil(max(np.abs(dx).max(), np.abs(dy).max()))) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    for x, y, w in zip(dx + half, dy + half, weights):
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        kernel[y0, x0] += w * (1 - fx) * (1 - fy)
        kernel[y0, x0 + 1] += w * fx * (1 - fy)
        kernel[y0 + 1, x0] += w * (1 - fx) * fy
        kernel[y0 + 1, x0 + 1] += w * fx * fy
    return kernel / kernel.sum()


def path_kernel(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Kernel of a camera path (hand shake), equal time at every point."""
    return _kernel_from_path(np.asarray(dx, float), np.asarray(dy, float), np.ones(len(dx)))


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return ndi.convolve(np.asarray(image, np.float64), kernel, mode="reflect")


# -- warps (geometric corruptions move the label map with the image) -------------------------
def warp_with_label(image: np.ndarray, label: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample image (linear) and label (nearest) at the same source coordinates; outside the
    image the image is ``fill`` and the label background."""
    coords = np.stack([rows, cols])
    out = ndi.map_coordinates(np.asarray(image, np.float64), coords, order=1, mode="constant",
                              cval=fill)
    out_label = ndi.map_coordinates(label, coords, order=0, mode="constant", cval=0)
    return out, out_label.astype(np.uint8)


def smooth_field(shape: tuple[int, int], sigma: float, amplitude: float,
                 rng: np.random.Generator) -> np.ndarray:
    """A smooth random field (uniform noise, Gaussian-filtered) scaled by ``amplitude``."""
    field = rng.uniform(-1.0, 1.0, size=shape)
    return ndi.gaussian_filter(field, sigma, mode="reflect", truncate=3.0) * amplitude


# -- codecs ----------------------------------------------------------------------------------
def to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(unit) * 255.0), 0, 255).astype(np.uint8)


def jpeg_roundtrip(image8: np.ndarray, quality: int) -> np.ndarray:
    """Encode an 8-bit grey (H, W) or colour (H, W, 3) image as JPEG at ``quality`` and decode
    it (PIL, libjpeg; colour with its default 4:2:0 chroma subsampling)."""
    buffer = io.BytesIO()
    Image.fromarray(image8, mode="L" if image8.ndim == 2 else "RGB").save(
        buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer), dtype=np.uint8)


def box_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float image with PIL's box filter (area average down, blocks up)."""
    pil = Image.fromarray(np.asarray(image, np.float32), mode="F")
    return np.asarray(pil.resize((size[1], size[0]), Image.BOX), dtype=np.float64)
