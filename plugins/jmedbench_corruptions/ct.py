"""CT-specific corruptions: what differs between scanners, protocols and exports.

The projection-domain ones (low dose, metal, rings, beam hardening, motion) simulate the error
in the sinogram with :mod:`jmedbench_corruptions.projection` and add only its filtered
back-projection to the slice (``slice + FBP(corrupted sinogram) - FBP(clean sinogram)``), so
discretisation of the simulated scanner never shows up as a corruption by itself. Attenuation
is ``0.0193 (1 + HU / 1000)`` per mm and a slice spans a nominal 350 mm field of view.

All keep the HU scale (the measured BMD under them is reported as is) except the 8-bit windowed
export, whose HU are rebuilt from reference tissues (``density="recalibrate"``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from jmedbench_corruptions._common import corruption, scaled, to_uint8, window
from jmedbench_corruptions.projection import hu_to_mu, mu_to_hu, projector
from jmedbench_corruptions.recalibration import recalibrate

FAMILY = "ct"
PROJECTION = ("Projection-domain simulation as in Yu et al., Development and validation of a "
              "practical lower-dose-simulation tool for optimizing CT scan protocols, J Comput "
              "Assist Tomogr 36(4), 2012; Kak & Slaney, Principles of Computerized Tomographic "
              "Imaging, 1988")
BARRETT = ("Barrett & Keat, Artifacts in CT: recognition and avoidance, RadioGraphics 24(6), "
           "2004")


def _fbp_difference(proj, corrupted: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """HU added to the slice by a change of its sinogram (line integrals)."""
    return mu_to_hu(proj.fbp(corrupted - clean))


@corruption("ct_low_dose", FAMILY, [2.0e5, 8.0e4, 3.0e4, 1.2e4, 5.0e3],
            "Lower dose: Poisson counts from I0 photons per ray through the slice's "
            "attenuation, -log(N / I0) reconstructed by filtered back-projection (smooth "
            "kernel); the added noise is streaky and strongest behind dense paths", PROJECTION)
def ct_low_dose(image, label, photons, rng):
    proj = projector(*image.shape)
    clean = proj.forward(hu_to_mu(image))
    counts = rng.poisson(photons * np.exp(-clean)).astype(np.float64)
    measured = -np.log(np.maximum(counts, 0.5) / photons)  # 0 counts: photon starvation
    return image + _fbp_difference(proj, measured, clean), label


METAL_HU = 3071.0
MU_METAL_PER_MM = 0.12  # titanium near 70 keV (4.5 g/cm3 x ~0.27 cm2/g)


@corruption("ct_metal", FAMILY,
            [(1, 0.020), (2, 0.022), (2, 0.030), (3, 0.032), (4, 0.036)],
            "Metal implants (n titanium rods, radius a fraction of the size) placed in the body "
            "away from the labelled bone: beam hardening and photon starvation on the rays "
            "through metal give dark and bright streaks", f"{BARRETT}; {PROJECTION}")
def ct_metal(image, label, param, rng):
    count, radius_frac = param
    h, w = image.shape
    radius = max(1.0, radius_frac * max(h, w))
    rows, cols = np.mgrid[0:h, 0:w]
    body = image > -500
    keep_out = ndi.binary_dilation(label > 0, iterations=int(np.ceil(radius)) + 2)
    candidates = np.flatnonzero(ndi.binary_erosion(body, iterations=int(np.ceil(radius)) + 1)
                                & ~keep_out)
    if candidates.size == 0:
        candidates = np.flatnonzero(~keep_out) if (~keep_out).any() else np.arange(h * w)
    metal = np.zeros((h, w), bool)
    for index in rng.choice(candidates, size=count, replace=candidates.size < count):
        r, c = divmod(int(index), w)
        metal |= (rows - r) ** 2 + (cols - c) ** 2 <= radius ** 2
    proj = projector(h, w)
    tissue = np.where(metal, 0.0, hu_to_mu(image))
    p_tissue = proj.forward(tissue)
    p_metal = proj.forward(metal * MU_METAL_PER_MM)
    # Beam hardening: the measured attenuation of metal grows sub-linearly with its path;
    # photon starvation: few photons survive, so the log of the counts is very noisy.
    hardened = 3.0 * (1.0 - np.exp(-p_metal / 3.0))
    photons = 2.0e5
    counts = rng.poisson(photons * np.exp(-(p_tissue + hardened))).astype(np.float64)
    measured = -np.log(np.maximum(counts, 0.5) / photons)
    ideal = p_tissue + p_metal
    out = image + _fbp_difference(proj, measured, ideal)
    out[metal] = METAL_HU
    return out, label


@lru_cache(maxsize=8)
def _ring_peak_hu(height: int, width: int) -> float:
    proj = projector(height, width)
    sinogram = np.zeros((proj.n_angles, proj.n_det))
    sinogram[:, proj.n_det // 2 + min(height, width) // 5] = 1.0
    return float(np.abs(mu_to_hu(proj.fbp(sinogram, window="ramp"))).max())


@corruption("ct_rings", FAMILY, [(2, 20.0), (3, 40.0), (5, 60.0), (7, 90.0), (10, 130.0)],
            "Ring artefacts: n miscalibrated detector channels (constant offset over all "
            "angles), rings of about the given HU centred on the rotation axis", BARRETT)
def ct_rings(image, label, param, rng):
    count, amplitude_hu = param
    proj = projector(*image.shape)
    radius_max = min(image.shape) / 2 * 0.9
    centre = proj.n_det // 2
    sinogram = np.zeros((proj.n_angles, proj.n_det))
    channels = centre + rng.integers(2, int(radius_max), size=count) * rng.choice([-1, 1], count)
    # A channel offset of 1 (line integral) gives a ring of _ring_peak_hu HU: scale to the
    # wanted amplitude, with a random sign and 60-100 % of it per channel.
    offsets = amplitude_hu / _ring_peak_hu(*image.shape) * rng.choice([-1.0, 1.0], size=count)
    sinogram[:, channels] = offsets * rng.uniform(0.6, 1.0, size=count)
    return image + mu_to_hu(proj.fbp(sinogram, window="ramp")), label


@corruption("ct_beam_hardening", FAMILY, [0.002, 0.004, 0.007, 0.011, 0.016],
            "Beam hardening without (or with a wrong) correction: measured line integrals "
            "p - beta p^2, giving cupping (a darker centre) and dark bands between dense bone",
            f"{BARRETT}; Brooks & Di Chiro, Beam hardening in X-ray reconstructive tomography, "
            "Phys Med Biol 21(3), 1976")
def ct_beam_hardening(image, label, beta, rng):
    proj = projector(*image.shape)
    clean = proj.forward(hu_to_mu(image))
    return image + _fbp_difference(proj, clean - beta * clean ** 2, clean), label


@corruption("ct_motion", FAMILY, [1.0, 2.0, 3.5, 5.0, 7.0],
            "Patient motion during the rotation: the slice moves along a smooth random path "
            "(amplitude in pixels at 224 px, scaled) while the projections are taken; ghosts "
            "and streaks around edges. The reconstruction is centred on the mean position, so "
            "the label map does not move", f"{BARRETT}; {PROJECTION}")
def ct_motion(image, label, amplitude, rng):
    proj = projector(*image.shape)
    amp = scaled(amplitude, image.shape)
    # Breathing-like path over the rotation: a sinusoid of random phase and direction plus a
    # slow drift, zero mean (the reconstruction stays centred on the label map).
    steps = np.linspace(0.0, 1.0, proj.n_angles)
    phase, drift = rng.uniform(0, 2 * np.pi, 2), rng.normal(0, 0.5, 2)
    path = np.stack([amp * np.sin(2 * np.pi * steps + phase[i]) + amp * drift[i] * (steps - 0.5)
                     for i in range(2)], axis=1)
    path -= path.mean(axis=0)
    clean = proj.forward(hu_to_mu(image))
    moving = proj.translate(clean, path[:, 0], path[:, 1])
    return image + _fbp_difference(proj, moving, clean), label


@corruption("ct_thick_slice", FAMILY, [0.02, 0.04, 0.06, 0.09, 0.12],
            "Thicker slices (partial volume): the slice averages a slab whose anatomy changes "
            "along z; neighbouring anatomy is approximated by copies scaled about the vertebra "
            "by up to +-s (the body tapers along z) with small shifts", BARRETT)
def ct_thick_slice(image, label, spread, rng):
    h, w = image.shape
    if (label > 0).any():
        cy, cx = ndi.center_of_mass(label > 0)
    else:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    copies = 7
    total = np.zeros((h, w))
    for z in np.linspace(-1.0, 1.0, copies):
        zoom = 1.0 + spread * z + rng.normal(0, spread / 4)
        dy, dx = rng.normal(0, spread * max(h, w) / 8, 2)
        coords = np.stack([cy + (rows - cy) / zoom + dy, cx + (cols - cx) / zoom + dx])
        total += ndi.map_coordinates(image, coords, order=1, mode="nearest")
    return total / copies, label


@corruption("ct_sharp_kernel", FAMILY, [0.4, 0.8, 1.3, 1.9, 2.6],
            "Reconstruction with a sharper (bone) kernel than the training data: high spatial "
            "frequencies boosted (unsharp mask, gain g, 1-pixel Gaussian), edges overshoot and "
            "noise grows", "Boas & Fleischmann, CT artifacts: causes and reduction techniques, "
            "Imaging Med 4(2), 2012")
def ct_sharp_kernel(image, label, gain, rng):
    smooth = ndi.gaussian_filter(image.astype(np.float64), 1.0 * max(1.0, image.shape[0] / 256))
    return image + gain * (image - smooth), label


@corruption("ct_hu_offset", FAMILY,
            [(4.0, 0.01), (8.0, 0.02), (15.0, 0.04), (25.0, 0.06), (40.0, 0.09)],
            "HU calibration drift between scanners: HU -> (1 +- g) HU +- o (random signs); "
            "water drifts by a few HU within QA limits, dense tissue by more across scanners "
            "and tube voltages",
            "Birnbaum et al., Multi-detector row CT attenuation measurements: assessment of "
            "intra- and interscanner variability with an anthropomorphic body CT phantom, "
            "Radiology 242(1), 2007")
def ct_hu_offset(image, label, param, rng):
    offset, gain = param
    signs = rng.choice([-1.0, 1.0], size=2)
    return image * (1.0 + signs[0] * gain) + signs[1] * offset, label


EXPORT_WINDOWS = [(500.0, 2000.0), (450.0, 1500.0), (300.0, 1000.0), (150.0, 700.0),
                  (40.0, 400.0)]


@corruption("ct_8bit_export", FAMILY, EXPORT_WINDOWS,
            "8-bit windowed export (a PNG of the displayed window: bone window W2000/L500 down "
            "to the soft-tissue window W400/L40): values outside the window clip, 256 grey "
            "levels; HU rebuilt from air, fat and soft tissue found in the image",
            "DICOM PS3.3 C.11.2 VOI LUT (window centre/width); HU recalibration from reference "
            "tissues as in phantomless QCT (Mueller et al., Phantom-less QCT BMD system as "
            "screening tool for osteoporosis without additional radiation, Eur J Radiol 2011)",
            density="recalibrate")
def ct_8bit_export(image, label, param, rng):
    level, width = param
    grey = to_uint8(window(image, level, width)) / 255.0
    hu, _ = recalibrate(grey, model="linear")
    return hu, label


CORRUPTIONS = [ct_low_dose, ct_metal, ct_rings, ct_beam_hardening, ct_motion, ct_thick_slice,
               ct_sharp_kernel, ct_hu_offset, ct_8bit_export]
