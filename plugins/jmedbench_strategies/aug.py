"""Augmentations of training batches: ``aug`` (colour space only, as the source paper) and
``geo`` (flip / rotate / scale of image and label together, off unless asked for).

Both act on torch tensors as the engine hands them over: images (B, 1, H, W) already mapped by
:func:`jmedbench.engine.preprocess.hu_to_input` (HU / 1000, clipped to [-0.25, 1.25]) and
labels (B, H, W) int64. Every random number comes from the ``torch.Generator`` passed in, so a
run's seed fixes every augmented batch.

Why colour space only by default: the paper augments brightness, contrast and hue and never
moves pixels, so the label map stays exactly the expert's; and its robustness question (photos
of a CT screen, another scanner) is about intensities, not geometry.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from jmedbench.engine.preprocess import HU_MAX, HU_MIN, HU_SCALE
from jmedbench.specs import SearchSpace
from jmedbench.strategy import Strategy

INPUT_MIN, INPUT_MAX = HU_MIN / HU_SCALE, HU_MAX / HU_SCALE

# Ranges at strength 1, in input units (1.0 = 1000 HU). Chosen so that the classes stay
# separable to a human reader: a cortical rim (~0.3-0.5 imaged) stays above cancellous (~0.1-0.2)
# and soft tissue (~0.05) under any single draw.
BRIGHTNESS = 0.05      # additive shift, +-50 HU: scanner calibration drift
CONTRAST = 0.20        # multiplicative about the image mean, x0.8 .. x1.2
GAMMA_LOG = 0.30       # gamma in exp(+-0.3) ~ 0.74 .. 1.35 on the image's own range
WINDOW_LOW = (INPUT_MIN, -0.15)   # lower window edge: air .. just below fat (~-0.1), which survives
WINDOW_HIGH = (0.8, INPUT_MAX)    # upper window edge: imaged cortical rims always survive


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _chance(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p


def colour_augment(images: torch.Tensor, generator: torch.Generator, strength: float = 1.0,
                   probability: float = 0.8) -> torch.Tensor:
    """Window jitter, gamma, contrast and brightness, each applied to a sample with
    ``probability``, with ranges scaled by ``strength``. Returns a new tensor."""
    if strength <= 0 or probability <= 0:
        return images.clone()
    b = images.shape[0]
    view = (b, 1, 1, 1)
    x = images.clone()
    # Draw every random number up front, in a fixed order, so the stream does not depend on the
    # data (determinism across machines).
    use_window, use_gamma, use_contrast, use_brightness = (
        _chance(b, probability, generator) for _ in range(4))
    low = _uniform(b, *WINDOW_LOW, generator)
    high = _uniform(b, *WINDOW_HIGH, generator)
    log_gamma = _uniform(b, -GAMMA_LOG * strength, GAMMA_LOG * strength, generator)
    contrast = _uniform(b, 1 - CONTRAST * strength, 1 + CONTRAST * strength, generator)
    shift = _uniform(b, -BRIGHTNESS * strength, BRIGHTNESS * strength, generator)

    # CT window jitter: clip to a random display window (what a phone photo of a screen keeps).
    low = torch.where(use_window, low, torch.full_like(low, INPUT_MIN)).view(view)
    high = torch.where(use_window, high, torch.full_like(high, INPUT_MAX)).view(view)
    x = torch.maximum(torch.minimum(x, high), low)

    # Gamma on each image's own [min, max] range, which it maps onto itself.
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    span = (x.amax(dim=(1, 2, 3), keepdim=True) - lo).clamp_min(1e-6)
    gamma = torch.where(use_gamma, log_gamma.exp(), torch.ones(b)).view(view)
    x = lo + span * ((x - lo) / span).clamp(0, 1).pow(gamma)

    # Contrast about the image mean, then a brightness shift.
    factor = torch.where(use_contrast, contrast, torch.ones(b)).view(view)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + factor * (x - mean)
    x = x + torch.where(use_brightness, shift, torch.zeros(b)).view(view)
    return x.clamp(INPUT_MIN, INPUT_MAX)


def random_affine(n: int, generator: torch.Generator, rotate_deg: float, scale: float,
                  translate: float, flip: bool) -> torch.Tensor:
    """(n, 2, 3) affine matrices in the normalised coordinates of ``affine_grid``: a rotation in
    +-rotate_deg, an isotropic scale in [1-scale, 1+scale], a shift in +-translate (fraction of
    the half-size) and, if ``flip``, a left-right flip with probability 1/2."""
    angle = _uniform(n, -rotate_deg, rotate_deg, generator) * math.pi / 180
    zoom = _uniform(n, 1 - scale, 1 + scale, generator)
    shift = _uniform(2 * n, -translate, translate, generator).view(n, 2)
    mirror = (torch.where(_chance(n, 0.5, generator), -1.0, 1.0) if flip
              else torch.ones(n))
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * mirror, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * mirror, cos
    theta[:, :, 2] = shift
    return theta


def warp_images(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling; outside the image repeats the border (air in CT), not 0 (water)."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def warp_labels(labels: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour resampling of (B, H, W) integer labels; outside is background."""
    x = labels[:, None].to(torch.float32)
    grid = F.affine_grid(theta.to(torch.float32), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out[:, 0].round().to(labels.dtype)


class ColourAugmentation(Strategy):
    """``aug``: brightness, contrast, gamma and CT window jitter; labels untouched."""

    name = "aug"

    def __init__(self, aug_strength: float = 1.0, aug_probability: float = 0.8) -> None:
        if aug_strength < 0 or not 0 <= aug_probability <= 1:
            from jmedbench.errors import UserError
            raise UserError(f"[strategy] aug_strength must be >= 0 (got {aug_strength}) and "
                            f"aug_probability in [0, 1] (got {aug_probability})")
        self.strength = float(aug_strength)
        self.probability = float(aug_probability)

    def augment(self, images: Any, labels: Any, generator: Any) -> tuple[Any, Any]:
        return colour_augment(images, generator, self.strength, self.probability), labels

    def search_space(self) -> SearchSpace:
        return {"aug_strength": ("float", 0.25, 2.0, False)}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "options": {"aug_strength": self.strength,
                                                  "aug_probability": self.probability}}


class GeometricAugmentation(Strategy):
    """``geo``: left-right flip, rotation and scaling of image and label together (label by
    nearest neighbour). Not part of ``sas``: the paper does not move pixels."""

    name = "geo"

    def __init__(self, geo_rotate_deg: float = 10.0, geo_scale: float = 0.1,
                 geo_flip: bool = True) -> None:
        self.rotate_deg, self.scale, self.flip = float(geo_rotate_deg), float(geo_scale), geo_flip

    def augment(self, images: Any, labels: Any, generator: Any) -> tuple[Any, Any]:
        theta = random_affine(images.shape[0], generator, self.rotate_deg, self.scale, 0.0,
                              self.flip)
        return warp_images(images, theta), warp_labels(labels, theta)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "options": {"geo_rotate_deg": self.rotate_deg,
                                                  "geo_scale": self.scale,
                                                  "geo_flip": self.flip}}
