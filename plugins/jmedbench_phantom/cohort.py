"""Who the phantom's subjects are: sites, demographics and the cancellous-bone HU distribution
whose mode is each subject's true BMD.

The age law is the paper's group-statistics fit D = -k * age + Z per sex and site, printed in
stored CT values (HU + 1024); here it is converted to HU. Each subject's true BMD is the law's
value at their age plus a personal deviation (``bmd_scatter_hu``, a choice of this phantom, not
a number from the paper), so that a cohort regression recovers k and Z only statistically, as
with people.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from jmedbench.density.johnsonsu import johnson_su_mode
from jmedbench.labels import STORED_VALUE_OFFSET as STORED_OFFSET

AGE_LAW: dict[tuple[str, str], tuple[float, float]] = {
    # (sex, site): (k, Z) of D = -k * age + Z, D in stored values (HU + 1024).
    ("M", "N"): (2.62, 1314.88),
    ("M", "S"): (1.94, 1277.66),
    ("F", "N"): (3.66, 1361.28),
    ("F", "S"): (3.69, 1367.20),
}
AGE_RANGE = (39, 80)
DEFAULT_BMD_SCATTER_HU = 15.0


@dataclass(frozen=True)
class Site:
    """A hospital's scanner and protocol (the imaging chain is :mod:`jmedbench_phantom.scanner`).

    slice_mm: reconstructed slice thickness; the slab is integrated over ``sub_planes`` planes
    (partial volume with endplates and discs). fov_mm: field of view of the spine-centred
    reconstruction; a smaller FOV makes the same vertebra cover more pixels, which is why
    vertebrae look larger at site S. sigma_mm: range of the in-plane point-spread function's
    Gaussian SD (reconstruction kernel, detector and the native pixel's box together), drawn per
    subject (log-uniform): protocols differ between patients and a model must not learn one
    kernel. noise_hu: range of the noise SD (dose, body size), drawn per subject. calibration_hu
    and bone_scale: the scanner's HU calibration against site N (an offset on every tissue and a
    kVp-like scale of HU above water); the age law is stated in each site's measured HU, so they
    do not move the cancellous mode. noise_hu_nominal: the spread the cohort's provisional
    Johnson-Su assumes before the image exists (the final scale comes from the image).
    """

    code: str
    slice_mm: float
    fov_mm: float
    sigma_mm: tuple[float, float]
    noise_hu: tuple[float, float]
    calibration_hu: float
    bone_scale: float
    sub_planes: int
    noise_hu_nominal: float


SITES: dict[str, Site] = {
    "N": Site("N", slice_mm=3.0, fov_mm=160.0, sigma_mm=(0.5, 2.0), noise_hu=(8.0, 42.0),
              calibration_hu=0.0, bone_scale=1.0, sub_planes=4, noise_hu_nominal=20.0),
    "S": Site("S", slice_mm=5.0, fov_mm=140.0, sigma_mm=(0.6, 2.0), noise_hu=(6.0, 30.0),
              calibration_hu=8.0, bone_scale=0.96, sub_planes=5, noise_hu_nominal=13.0),
}


def law_bmd_hu(sex: str, site: str, age: float) -> float:
    """The paper's age law in HU: -k * age + Z - 1024."""
    k, z = AGE_LAW[(sex, site)]
    return -k * age + z - STORED_OFFSET


def johnson_su_std(a: float, b: float) -> float:
    """Standard deviation of Johnson-Su(a, b, loc=0, scale=1) (closed form)."""
    w = math.exp(1.0 / (b * b))
    return math.sqrt((w - 1.0) * (w * math.cosh(2.0 * a / b) + 1.0) / 2.0)


@dataclass(frozen=True)
class CancellousLaw:
    """The Johnson-Su (scipy's a, b, loc, scale) of one subject's cancellous pixels, as they
    appear in the image: trabecular texture and scanner noise are part of this distribution,
    so its mode is exactly the stored true BMD."""

    a: float
    b: float
    loc: float
    scale: float

    @property
    def mode(self) -> float:
        return johnson_su_mode(self.a, self.b, self.loc, self.scale)

    def quantiles(self, n: int) -> np.ndarray:
        """The n mid-point quantiles (i + 0.5) / n, ascending: a sample whose empirical
        distribution is the law itself, so a maximum-likelihood fit recovers it."""
        from scipy.special import ndtri

        z = ndtri((np.arange(n, dtype=np.float64) + 0.5) / n)
        return self.loc + self.scale * np.sinh((z - self.a) / self.b)


@dataclass(frozen=True)
class Person:
    """One subject's demographics and bone: what the cohort law is about."""

    subject_id: str
    site: str
    sex: str
    age: int
    true_bmd: float  # HU, the mode of ``cancellous``
    cancellous: CancellousLaw


def draw_person(rng: np.random.Generator, subject_id: str, site: str,
                bmd_scatter_hu: float = DEFAULT_BMD_SCATTER_HU) -> Person:
    """Sex (1:1), age (uniform integer 39-80), true BMD = law + N(0, scatter), and a Johnson-Su
    with that mode: right-skewed (a < 0) like the paper's fits, spread = trabecular
    heterogeneity (20-32 HU) and the site's scanner noise added in quadrature."""
    sex = "F" if rng.random() < 0.5 else "M"
    age = int(rng.integers(AGE_RANGE[0], AGE_RANGE[1] + 1))
    deviation = rng.standard_normal()
    true_bmd = law_bmd_hu(sex, site, age) + bmd_scatter_hu * deviation
    a = rng.uniform(-2.2, -0.8)
    b = rng.uniform(2.2, 3.4)
    spread = math.hypot(rng.uniform(20.0, 32.0), SITES[site].noise_hu_nominal)
    scale = spread / johnson_su_std(a, b)
    loc = true_bmd - scale * johnson_su_mode(a, b, 0.0, 1.0)
    law = CancellousLaw(a, b, loc, scale)
    return Person(subject_id, site, sex, age, float(true_bmd), law)
