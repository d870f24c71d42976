"""The phantom dataset: subjects rendered slice by slice, split by subject, seeded.

Each subject's content depends only on (seed, site, index within its site), never on the split
sizes or the view, so ``phantom`` and ``phantom-s`` share people and enlarging a split does not
change the subjects already in it. Splits take consecutive indices of a site: train, val, test,
then unlabelled from the training site, and shift from the other site.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Callable

import numpy as np
from scipy.ndimage import correlate1d

from jmedbench.data import Dataset, Subject
from jmedbench.errors import UserError

from jmedbench_phantom.anatomy import Anatomy, draw_anatomy
from jmedbench_phantom.canvas import Canvas
from jmedbench_phantom.cohort import (AGE_LAW, DEFAULT_BMD_SCATTER_HU, SITES, Person, Site,
                                      draw_person)
from jmedbench_phantom.render import SubjectRenderer
from jmedbench_phantom.texture import FieldBank, noise_bank, trabecular_bank

SITE_CODES = {"N": 1, "S": 2}
HU_LIMITS = (-1024.0, 3071.0)


def subject_rng(seed: int, site: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SITE_CODES[site], index])


def subject_id(site: str, index: int) -> str:
    return f"{site}{index:04d}"


def draw_cohort(seed: int, site: str, count: int, start: int = 0,
                bmd_scatter_hu: float = DEFAULT_BMD_SCATTER_HU) -> list[Person]:
    """The people (sex, age, true BMD) of a site without drawing any image: the same draws the
    dataset makes, for cohort statistics."""
    return [draw_person(subject_rng(seed, site, i), subject_id(site, i), site, bmd_scatter_hu)
            for i in range(start, start + count)]


class SiteBanks:
    """Noise and texture fields of one site at one image size (made once per dataset)."""

    def __init__(self, seed: int, site: Site, size: int) -> None:
        rng = np.random.default_rng([seed, SITE_CODES[site.code], 0x7E47, size])
        pixel = site.fov_mm / size
        self.noise: FieldBank = noise_bank(rng, size, pixel, site.noise_cutoff)
        self.trabecular: FieldBank = trabecular_bank(rng, size, pixel)


def slice_positions(rng: np.random.Generator, anat: Anatomy, n: int, thickness: float
                    ) -> np.ndarray:
    """n slice centres spread evenly from the T12/L1 disc to the L2/L3 disc (the first and last
    may fall in a disc), each moved, if needed, so that its whole slab lies in one bone or one
    disc: a slice never straddles an endplate, so its label is never ambiguous."""
    margin = thickness / 2.0 + 0.5
    (_, d0_top, d0_bottom), _, (_, d2_top, d2_bottom) = anat.discs
    start = d0_bottom - rng.uniform(-3.0, 0.8 * (d0_bottom - d0_top))
    stop = d2_top + rng.uniform(-3.0, 0.8 * (d2_bottom - d2_top))
    centres = start + (np.arange(n) + 0.5) * (stop - start) / n
    intervals = [(b.top + margin, b.top + b.height - margin) for b in anat.bodies]
    intervals += [(top + margin, bottom - margin) for _, top, bottom in anat.discs]
    intervals = [(lo, hi) for lo, hi in intervals if hi >= lo]
    out = []
    for z in centres:
        nearest = min((min(max(z, lo), hi) for lo, hi in intervals), key=lambda p: abs(p - z))
        out.append(nearest)
    return np.asarray(out)


def gaussian_weights(sigma_px: float) -> np.ndarray:
    radius = max(1, math.ceil(2.5 * sigma_px))
    w = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2.0 * sigma_px * sigma_px))
    return (w / w.sum()).astype(np.float32)


def blur(planes: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """The reconstruction kernel: a separable Gaussian over the last two axes."""
    out = correlate1d(planes, psf, -2, mode="nearest")
    return correlate1d(out, psf, -1, mode="nearest", output=out)


def shell_brightness(tissue: np.ndarray, label: np.ndarray, shell_hu: float, target_hu: float,
                     psf: np.ndarray) -> float:
    """The shell HU (before blur) that makes the labelled cortical pixels of this slice average
    ``target_hu`` after the blur, whatever the pixel size and kernel (blur spills a thin
    shell's HU into its neighbours, more so at coarse pixels and soft kernels). The blurred
    image is linear in the shell's HU, so the blurred shell indicator gives it exactly."""
    shell = (tissue == np.float32(shell_hu)).astype(np.float32)
    image, spread = blur(np.stack([tissue, shell]), psf)
    inside = label == 1
    gain = float(spread[inside].mean()) if inside.any() else 0.0
    if gain <= 0:
        return shell_hu
    return shell_hu + (target_hu - float(image[inside].mean())) / gain


def render_subject(person: Person, site: Site, size: int, n_slices: int, banks: SiteBanks,
                   rng: np.random.Generator) -> Subject:
    """All slices of one subject: anatomy, partial volume, blur, calibration, noise, then the
    cancellous pixels take the subject's Johnson-Su quantiles in the order of a texture field."""
    anat = draw_anatomy(rng, person, site)
    pixel = site.fov_mm * rng.uniform(0.95, 1.05) / size
    canvas = Canvas(size, pixel, rng.uniform(-5.0, 5.0), 15.0 + rng.uniform(-5.0, 5.0))
    positions = slice_positions(rng, anat, n_slices, site.slice_mm)
    k = site.slab_samples
    offsets = [site.slice_mm * ((i + 0.5) / k - 0.5) for i in range(k)]
    renderer = SubjectRenderer(anat, canvas, [float(z) for z in positions])
    psf = gaussian_weights(site.psf_sigma_mm / pixel)
    endplates = np.asarray(anat.endplates)

    images = np.empty((n_slices, size, size), np.float32)
    labels = np.zeros((n_slices, size, size), np.uint8)
    order_keys: list[np.ndarray] = []
    cancellous_at: list[tuple[int, tuple, np.ndarray]] = []
    regions = []
    # The shell's HU before blur: set on the first body slice so that its labelled cortical
    # pixels average the subject's cortical HU after the blur; the same shell brightness then
    # serves the subject's other slices (their shells differ little).
    shell_hu = None
    for s, z in enumerate(positions):
        tissue = renderer.tissue(z, offsets)
        if shell_hu is None and anat.region(z)[0] == "body":
            probe = tissue.copy()
            renderer.vertebral_body(probe, labels[s], z, person.true_bmd, anat.hu["cortex"])
            shell_hu = shell_brightness(probe, labels[s], anat.hu["cortex"], anat.hu["cortex"],
                                        psf)
        texture = renderer.vertebral_body(tissue, labels[s], z, person.true_bmd,
                                          shell_hu or anat.hu["cortex"])
        kind, index, _ = anat.region(z)
        regions.append(anat.bodies[index].name if kind == "body" else
                       next(d[0] for d in anat.discs if d[1] <= z <= d[2]))
        noise = banks.noise.crop(rng)
        image = blur(tissue, psf)
        image += site.calibration_hu
        image += site.noise_hu * noise
        images[s] = image
        if texture is None:
            continue
        where, uu, vv = texture
        mask = labels[s][where] == 2
        if not mask.any():
            continue
        # Rank field: trabecular pattern and the slice's own noise grain, denser bone towards
        # the shell and the endplates, the basivertebral vein as a darker patch behind the
        # centre. Only the ranks matter: the values come from the Johnson-Su quantiles.
        u, v = uu[mask], vv[mask]
        rho2 = u * u + v * v
        vein = np.exp(-(u * 4.0) ** 2 - ((v - 0.55) * (1 / 0.3)) ** 2)
        near_endplate = math.exp(-float(np.min(np.abs(endplates - z))) / 4.0)
        key = (banks.trabecular.crop(rng)[where][mask] + 0.5 * noise[where][mask]
               + 0.8 * rho2 * rho2 - 1.2 * vein + 0.6 * near_endplate)
        order_keys.append(key)
        cancellous_at.append((s, where, mask))

    if order_keys:
        keys = np.concatenate(order_keys)
        values = np.empty(keys.size)
        values[np.argsort(keys, kind="stable")] = person.cancellous.quantiles(keys.size)
        offset = 0
        for s, where, mask in cancellous_at:
            count = int(mask.sum())
            images[s][where][mask] = values[offset:offset + count]
            offset += count
    np.rint(images, out=images)  # CT stores integers
    np.clip(images, *HU_LIMITS, out=images)
    law = person.cancellous
    meta = {
        "johnson_su": {"a": law.a, "b": law.b, "loc": law.loc, "scale": law.scale},
        "slice_z_mm": [round(float(z), 2) for z in positions],
        "slice_regions": regions,
        "slice_thickness_mm": site.slice_mm,
        "fov_mm": round(pixel * size, 2),
        **anat.facts,
    }
    return Subject(person.subject_id, images, labels, (site.slice_mm, pixel, pixel), site=site.code,
                   sex=person.sex, age=float(person.age), true_bmd=person.true_bmd, meta=meta)


def _check(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"[data.phantom] {name} must be an integer >= {minimum}, got {value!r}")
    return value


def make_phantom_dataset(seed: int = 0, image_size: int = 128, train_subjects: int = 16,
                         val_subjects: int = 2, test_subjects: int = 6, shift_subjects: int = 6,
                         slices_per_subject: int = 8, unlabelled_subjects: int = 0,
                         train_site: str = "N", bmd_scatter_hu: float = DEFAULT_BMD_SCATTER_HU
                         ) -> Dataset:
    """Synthetic L1/L2 CT: train/val/test (and unlabelled) from ``train_site``, shift from the
    other site. See docs/phantom.md."""
    _check("train_subjects", train_subjects, 1)
    for name, value in (("val_subjects", val_subjects), ("test_subjects", test_subjects),
                        ("shift_subjects", shift_subjects),
                        ("unlabelled_subjects", unlabelled_subjects)):
        _check(name, value, 0)
    _check("slices_per_subject", slices_per_subject, 1)
    _check("image_size", image_size, 16)
    if train_site not in SITES:
        raise UserError(f"[data.phantom] train_site must be one of {', '.join(SITES)}, "
                        f"got {train_site!r}")
    if not isinstance(bmd_scatter_hu, (int, float)) or bmd_scatter_hu < 0:
        raise UserError(f"[data.phantom] bmd_scatter_hu must be a number >= 0, "
                        f"got {bmd_scatter_hu!r}")
    shift_site = next(s for s in SITES if s != train_site)
    banks: dict[str, SiteBanks] = {}
    plan = [("train", train_site, 0, train_subjects)]
    start = train_subjects
    for split, count in (("val", val_subjects), ("test", test_subjects),
                         ("unlabelled", unlabelled_subjects)):
        plan.append((split, train_site, start, count))
        start += count
    plan.append(("shift", shift_site, 0, shift_subjects))

    splits: dict[str, list[Subject]] = {}
    for split, site_code, first, count in plan:
        if count == 0 and split == "unlabelled":
            continue
        site = SITES[site_code]
        if site_code not in banks:
            banks[site_code] = SiteBanks(seed, site, image_size)
        subjects = []
        for index in range(first, first + count):
            rng = subject_rng(seed, site_code, index)
            person = draw_person(rng, subject_id(site_code, index), site_code,
                                 float(bmd_scatter_hu))
            subjects.append(render_subject(person, site, image_size, slices_per_subject,
                                           banks[site_code], rng))
        splits[split] = subjects
    name = "phantom" if train_site == "N" else f"phantom-{train_site.lower()}"
    info = {
        "seed": seed, "image_size": image_size, "train_site": train_site,
        "shift_site": shift_site, "bmd_scatter_hu": float(bmd_scatter_hu),
        "sites": {code: dataclasses.asdict(site) for code, site in SITES.items()},
        "age_law_stored_values": {f"{sex}{site}": {"k": k, "Z": z}
                                  for (sex, site), (k, z) in AGE_LAW.items()},
    }
    return Dataset(splits, name=name, info=info)


def view(train_site: str) -> Callable[..., Dataset]:
    """The factory of a cross-site view: the same options, another training site."""

    def factory(**options) -> Dataset:
        return make_phantom_dataset(**{"train_site": train_site, **options})

    params = [p.replace(default=train_site) if p.name == "train_site" else p
              for p in inspect.signature(make_phantom_dataset).parameters.values()]
    factory.__signature__ = inspect.Signature(params, return_annotation=Dataset)
    factory.__name__ = f"make_phantom_{train_site.lower()}_dataset"
    factory.__doc__ = (f"The phantom trained at site {train_site} and shifted to the other site "
                       f"(same options as make_phantom_dataset).")
    return factory
