"""Classic corruptions: the noise, blur, digital and elastic corruptions of ImageNet-C
(Hendrycks & Dietterich 2019, code as in ``imagecorruptions``) and MedMNIST-C (Di Salvo et al.
2024), adapted to HU images.

Adaptation: each corruption acts on ``u = (HU + 1024) / 4095``, the 12-bit CT range mapped to
[0, 1] (the range the model's own input is clipped to), exactly as the references act on a
[0, 1] photograph, and maps back to HU. The HU scale is therefore kept (``density="hu"``): a
corruption that changes intensities (brightness, contrast, noise) changes the measured BMD, and
that error is what the suite reports. Severity parameters are MedMNIST-C's for its CT subset
(OrganAMNIST) where it has the corruption, else ImageNet-C's; lengths given for 224-pixel
images are scaled to the slice's size. In HU, a noise level ``c`` in ``u`` is ``4095 c`` HU.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from jmedbench_corruptions._common import (box_resize, convolve, corruption, disk_kernel,
                                           hu_to_unit, jpeg_roundtrip, line_kernel, scaled,
                                           smooth_field, to_uint8, unit_to_hu, warp_with_label)

IMAGENET_C = ("Hendrycks & Dietterich, Benchmarking Neural Network Robustness to Common "
              "Corruptions and Perturbations, ICLR 2019 (ImageNet-C; imagecorruptions)")
MEDMNIST_C = ("Di Salvo, Doerrich, Ledig, MedMNIST-C: Comprehensive benchmark and improved "
              "classifier robustness by simulating realistic image corruptions, arXiv:2406.17536, "
              "2024 (OrganAMNIST parameters)")
BOTH = f"{IMAGENET_C}; {MEDMNIST_C}"
FAMILY = "classic"


@corruption("gaussian_noise", FAMILY, [0.04, 0.08, 0.12, 0.16, 0.20],
            "Additive Gaussian noise, sd c in u (c x 4095 HU), clipped to the CT range", BOTH)
def gaussian_noise(image, label, c, rng):
    u = hu_to_unit(image)
    return unit_to_hu(np.clip(u + rng.normal(0.0, c, u.shape), 0, 1)), label


@corruption("shot_noise", FAMILY, [200, 100, 50, 25, 15],
            "Poisson (shot) noise: Poisson(u * k) / k for k photons at full scale", BOTH)
def shot_noise(image, label, k, rng):
    u = hu_to_unit(image)
    return unit_to_hu(np.clip(rng.poisson(np.clip(u, 0, 1) * k) / k, 0, 1)), label


@corruption("impulse_noise", FAMILY, [0.01, 0.02, 0.03, 0.05, 0.08],
            "Salt-and-pepper noise: a fraction of pixels set to -1024 or 3071 HU", BOTH)
def impulse_noise(image, label, amount, rng):
    out = np.asarray(image, np.float64).copy()
    hit = rng.random(out.shape) < amount
    salt = rng.random(out.shape) < 0.5
    out[hit & salt] = unit_to_hu(1.0)
    out[hit & ~salt] = unit_to_hu(0.0)
    return out, label


@corruption("speckle_noise", FAMILY, [0.05, 0.10, 0.20, 0.30, 0.40],
            "Multiplicative (speckle) noise u + u * N(0, c)", BOTH)
def speckle_noise(image, label, c, rng):
    u = hu_to_unit(image)
    return unit_to_hu(np.clip(u + u * rng.normal(0.0, c, u.shape), 0, 1)), label


@corruption("defocus_blur", FAMILY, [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
            "Defocus: convolution with a disk of radius r (ImageNet-C radii at 224 px, scaled)",
            IMAGENET_C)
def defocus_blur(image, label, param, rng):
    radius, alias = param
    kernel = disk_kernel(scaled(radius, image.shape), alias)
    return unit_to_hu(np.clip(convolve(hu_to_unit(image), kernel), 0, 1)), label


@corruption("motion_blur", FAMILY, [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
            "Motion blur along a random direction (-45..45 degrees), Gaussian weights along a "
            "line (ImageNet-C radius, sigma at 224 px, scaled); centred, so the anatomy stays "
            "on its label", IMAGENET_C)
def motion_blur(image, label, param, rng):
    radius, sigma = param
    angle = rng.uniform(-45, 45)
    kernel = line_kernel(scaled(radius, image.shape), scaled(sigma, image.shape), angle)
    return unit_to_hu(np.clip(convolve(hu_to_unit(image), kernel), 0, 1)), label


ZOOMS = [np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
         np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03)]


@corruption("zoom_blur", FAMILY, ZOOMS,
            "Zoom blur: the mean of the image and copies zoomed about its centre (ImageNet-C "
            "factors); a blur, the anatomy's centre does not move", IMAGENET_C)
def zoom_blur(image, label, factors, rng):
    u = hu_to_unit(image)
    h, w = u.shape
    total = u.copy()
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    for factor in factors:
        coords = np.stack([cy + (rows - cy) / factor, cx + (cols - cx) / factor])
        total += ndi.map_coordinates(u, coords, order=1, mode="nearest")
    return unit_to_hu(np.clip(total / (len(factors) + 1), 0, 1)), label


# torchvision's default sigma for MedMNIST-C's kernel sizes 11, 13, 15, 17, 21:
# 0.3 * ((k - 1) / 2 - 1) + 0.8.
GAUSSIAN_SIGMAS = [0.3 * ((k - 1) / 2 - 1) + 0.8 for k in (11, 13, 15, 17, 21)]


@corruption("gaussian_blur", FAMILY, GAUSSIAN_SIGMAS,
            "Gaussian blur (MedMNIST-C kernel sizes 11..21 at 224 px, torchvision's sigma, "
            "scaled)", MEDMNIST_C)
def gaussian_blur(image, label, sigma, rng):
    u = ndi.gaussian_filter(hu_to_unit(image), scaled(sigma, image.shape), mode="reflect")
    return unit_to_hu(u), label


@corruption("contrast", FAMILY, [0.8, 0.7, 0.6, 0.55, 0.5],
            "Lower contrast: u -> mean + f (u - mean), as PIL ImageEnhance.Contrast", MEDMNIST_C)
def contrast(image, label, factor, rng):
    u = hu_to_unit(image)
    mean = u.mean()
    return unit_to_hu(np.clip(mean + factor * (u - mean), 0, 1)), label


@corruption("brightness", FAMILY, [1.2, 1.3, 1.4, 1.5, 1.6],
            "Brighter: u -> f u, clipped, as PIL ImageEnhance.Brightness (HU shift grows with "
            "density)", MEDMNIST_C)
def brightness(image, label, factor, rng):
    return unit_to_hu(np.clip(hu_to_unit(image) * factor, 0, 1)), label


# MedMNIST-C's qualities are 50, 30, 15, 10, 7; on CT slices quality 10 often errs less than 15
# (libjpeg scales its quantisation tables by 5000/q below 50), so the ladder is spread out to
# grow the error at every step.
@corruption("jpeg", FAMILY, [50, 30, 20, 8, 5],
            "JPEG compression of the 8-bit image of u at quality q (16 HU per grey level)",
            BOTH)
def jpeg(image, label, quality, rng):
    decoded = jpeg_roundtrip(to_uint8(hu_to_unit(image)), quality)
    return unit_to_hu(decoded / 255.0), label


@corruption("pixelate", FAMILY, [0.7, 0.6, 0.5, 0.4, 0.35],
            "Pixelation: box down-sampling by factor f and box up-sampling back", MEDMNIST_C)
def pixelate(image, label, factor, rng):
    h, w = image.shape
    small = box_resize(image, (max(1, int(h * factor)), max(1, int(w * factor))))
    return box_resize(small, (h, w)), label


ELASTIC_ALPHA = [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12]


@corruption("elastic", FAMILY, ELASTIC_ALPHA,
            "Elastic deformation: a smoothed random displacement field (imagecorruptions' "
            "elastic_transform: sigma 1% of the size, uniform noise of +-0.5% of the size, "
            "times alpha); the label map moves with it (nearest neighbour)", IMAGENET_C,
            geometric=True)
def elastic(image, label, alpha, rng):
    h, w = image.shape
    sigma = 0.01 * max(h, w)
    max_d = 0.005 * max(h, w)
    dy = smooth_field((h, w), sigma, max_d * alpha, rng)
    dx = smooth_field((h, w), sigma, max_d * alpha, rng)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    # Outside the image the CT is air: fill with the image minimum, label background.
    return warp_with_label(image, label, rows + dy, cols + dx, fill=float(image.min()))


CORRUPTIONS = [gaussian_noise, shot_noise, impulse_noise, speckle_noise, defocus_blur,
               motion_blur, zoom_blur, gaussian_blur, contrast, brightness, jpeg, pixelate,
               elastic]
