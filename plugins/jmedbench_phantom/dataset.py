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
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn)
from scipy.ndimage import gaussian_filter

from jmedbench.cancellous import DEFAULT_EROSION_MM, bodies_from_fractions, split_bodies_2d
from jmedbench.data import Dataset, Subject
from jmedbench.density.johnsonsu import fit_johnson_su
from jmedbench.errors import UserError

from jmedbench_phantom import cache
from jmedbench_phantom.anatomy import Anatomy, draw_anatomy
from jmedbench_phantom.canvas import Canvas
from jmedbench_phantom.cohort import (AGE_LAW, DEFAULT_BMD_SCATTER_HU, SITES, Person, Site,
                                      draw_person)
from jmedbench_phantom.render import SubjectRenderer
from jmedbench_phantom.scanner import (DEFAULT_THIN_SLICE_SHARE, THIN_SLICE_MM, block_average,
                                       blur, calibrate, draw_protocol, draw_thin_slice,
                                       kernel_weights, supersampling)
from jmedbench_phantom.texture import FieldBank, noise_bank, trabecular_bank
from jmedbench_phantom.vertebra import VertebraPainter

SITE_CODES = {"N": 1, "S": 2}
HU_LIMITS = (-1024.0, 3071.0)
PROGRESS_FROM = 12  # subjects: below this a progress bar would only flicker


THIN_SLICE_STREAM = 0x7415


def subject_rng(seed: int, site: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SITE_CODES[site], index])


def thin_slice_rng(seed: int, site: str, index: int) -> np.random.Generator:
    """The generator of a subject's thin-slice draw (:func:`draw_thin_slice`), apart from
    :func:`subject_rng` so that the share moves nothing else."""
    return np.random.default_rng([seed, SITE_CODES[site], index, THIN_SLICE_STREAM])


def subject_id(site: str, index: int) -> str:
    return f"{site}{index:04d}"


def draw_cohort(seed: int, site: str, count: int, start: int = 0,
                bmd_scatter_hu: float = DEFAULT_BMD_SCATTER_HU) -> list[Person]:
    """The people (sex, age, true BMD) of a site without drawing any image: the same draws the
    dataset makes, for cohort statistics."""
    return [draw_person(subject_rng(seed, site, i), subject_id(site, i), site, bmd_scatter_hu)
            for i in range(start, start + count)]


class SiteBanks:
    """Noise fields (one bank per noise cut-off, at the output grid) and the fine-grid
    trabecular texture of one site at one image size (made once per dataset, lazily)."""

    def __init__(self, seed: int, site: Site, size: int) -> None:
        self.seed, self.site, self.size = seed, site, size
        self.pixel = site.fov_mm / size
        self.k = supersampling(self.pixel)
        self._noise: dict[float, FieldBank] = {}
        rng = np.random.default_rng([seed, SITE_CODES[site.code], 0x7E47, size])
        fine = self.pixel / self.k
        window = int(math.ceil(2 * 42.0 / fine)) + 2  # the vertebra painter's window
        self.trabecular: FieldBank = trabecular_bank(rng, window, fine)

    def noise(self, cutoff: float) -> FieldBank:
        if cutoff not in self._noise:
            rng = np.random.default_rng([self.seed, SITE_CODES[self.site.code], 0x7E48,
                                         self.size, int(round(cutoff * 1000))])
            self._noise[cutoff] = noise_bank(rng, self.size, self.pixel, cutoff)
        return self._noise[cutoff]


def slice_positions(rng: np.random.Generator, anat: Anatomy, n: int) -> np.ndarray:
    """n slice centres spread evenly from the T12/L1 disc to the L2/L3 disc (the first and last
    may fall in a disc). Slices may straddle an endplate, as in real scans: the label rule
    (:mod:`jmedbench.cancellous`) decides what such a slice's pixels are."""
    (_, d0_top, d0_bottom), _, (_, d2_top, d2_bottom) = anat.discs
    start = d0_bottom - rng.uniform(-3.0, 0.8 * (d0_bottom - d0_top))
    stop = d2_top + rng.uniform(-3.0, 0.8 * (d2_bottom - d2_top))
    centres = start + (np.arange(n) + 0.5) * (stop - start) / n
    # Every subject needs cancellous bone for its BMD: with very few slices, make sure one
    # lies in the middle of a body (the slice nearest to one is moved there).
    middles = [(b.top + 0.3 * b.height, b.top + 0.7 * b.height) for b in anat.bodies]
    if not any(lo <= z <= hi for z in centres for lo, hi in middles):
        target = anat.bodies[0].top + 0.5 * anat.bodies[0].height
        centres[int(np.argmin(np.abs(centres - target)))] = target
    return centres


TARGETED_FIELD_PROBABILITY = 0.15
"""Share of subjects whose reconstruction (or delivered crop) covers only part of the view."""


def targeted_field(rng: np.random.Generator, canvas: Canvas, anat: Anatomy, size: int,
                   pixel: float) -> np.ndarray | None:
    """The output pixels inside a targeted reconstruction, or None for a full field. A spine
    study reconstructed (or cropped) to a small field, 100-140 mm around the vertebra, shown in
    the models' wider view leaves a frame of padding (-1024 HU) around it, as real crops do;
    the vertebral body and the arch lie inside. Drawn for every subject (a fixed number of
    draws), applied to a share of them."""
    r = rng.random(5)
    if r[0] >= TARGETED_FIELD_PROBABILITY:
        return None
    cx, cy = anat.spine.centre(0.5 * sum(anat.span))
    fx, fy = cx + 10.0 * (r[1] - 0.5), cy + 12.0 * r[2]  # the arch lies behind the body
    hx, hy = 50.0 + 20.0 * r[3], 50.0 + 20.0 * r[4]
    centre = (size - 1) / 2.0
    x0 = canvas.x0 + canvas.pixel_mm * (canvas.size - 1) / 2.0  # the view's centre
    y0 = canvas.y0 + canvas.pixel_mm * (canvas.size - 1) / 2.0
    xs = x0 + (np.arange(size) - centre) * pixel
    ys = y0 + (np.arange(size) - centre) * pixel
    return (np.abs(ys - fy)[:, None] <= hy) & (np.abs(xs - fx)[None, :] <= hx)


BMD_TOLERANCE_HU = 0.25
"""The fitted mode of a subject's labelled cancellous pixels lies this close to its true BMD."""


def _cancellous_mode(values: np.ndarray):
    """(fit, mode) of the project's Johnson-Su fit; the mode is NaN when the fit is degenerate
    (a handful of pixels at 64 x 64 with few slices)."""
    fit = fit_johnson_su(values)
    mode = float(fit.mode)
    return fit, (mode if np.isfinite(mode) else float("nan"))


def set_cancellous_mode(images: np.ndarray, cancellous: np.ndarray, true_bmd: float
                        ) -> tuple[object, float, float]:
    """Move the cancellous bone of an imaged subject so that the Johnson-Su fit of its labelled
    cancellous pixels (integer HU, as stored) has its mode at ``true_bmd``; in place, rounding
    included. The move is one offset added to the label-2 pixels and, tapering over two
    pixels, to their neighbours in the cortical rim (no step at the label's edge): texture,
    partial volume, blur and noise stay as imaged. The anatomy is drawn so that the offset is
    small (``meta['mode_offset_hu']``). Returns (final fit, offset, imaged mode)."""
    weight = np.zeros(images.shape, np.float32)
    for s in range(images.shape[0]):
        if cancellous[s].any():
            taper = gaussian_filter(cancellous[s].astype(np.float32), 1.0)
            weight[s] = np.maximum(np.minimum(taper * 2.0, 1.0), cancellous[s])
    imaged = images.astype(np.float64)
    fit, imaged_mode = _cancellous_mode(imaged[cancellous])
    start = imaged_mode if np.isfinite(imaged_mode) else float(np.median(imaged[cancellous]))
    offset = true_bmd - start
    for _ in range(6):  # rounding moves the mode a little: correct it
        np.rint(imaged + offset * weight, out=images)
        fit, mode = _cancellous_mode(images[cancellous])
        if not np.isfinite(mode) or abs(mode - true_bmd) <= BMD_TOLERANCE_HU:
            break
        offset += true_bmd - mode
    return fit, offset, imaged_mode


def render_subject(person: Person, site: Site, size: int, n_slices: int, banks: SiteBanks,
                   rng: np.random.Generator, erosion_mm: float = DEFAULT_EROSION_MM,
                   thin_slice_mm: float | None = None) -> Subject:
    """All slices of one subject: fine-grid anatomy over each slab, scanner imaging, labels by
    the shared rule, then the cancellous bone is moved by a few HU so that the Johnson-Su mode
    of its labelled pixels is the true BMD (:func:`set_cancellous_mode`)."""
    anat = draw_anatomy(rng, person, site)
    protocol = draw_protocol(rng, site, thin_slice_mm)
    pixel = site.fov_mm * rng.uniform(0.95, 1.05) / size
    k = banks.k
    sp = anat.spine
    # A spine-centred reconstruction like the real loader's (centred on the L1/L2 bodies),
    # off by a few millimetres as a spine detector would be.
    canvas = Canvas(size * k, pixel / k, sp.cx + rng.uniform(-6.0, 6.0),
                    sp.cy + rng.uniform(-4.0, 10.0))
    positions = slice_positions(rng, anat, n_slices)
    crop = targeted_field(rng, canvas, anat, size, pixel)
    offsets = protocol.sub_plane_offsets()
    renderer = SubjectRenderer(anat, canvas, [float(z) for z in positions])
    painter = VertebraPainter(anat, canvas)
    psf = kernel_weights(protocol, pixel)
    noise_bank_ = banks.noise(protocol.noise_cutoff)

    images = np.empty((n_slices, size, size), np.float32)
    labels = np.zeros((n_slices, size, size), np.uint8)
    regions = []
    n_fine = size * k
    for s, z in enumerate(positions):
        found = painter.window(z)
        texture = (banks.trabecular.crop(rng, (found[2].shape[0], found[1].shape[1]))
                   if found is not None else None)
        where, bodies = painter.prepare(z, 0.5 * protocol.slice_mm, texture)
        fractions = [np.zeros((n_fine, n_fine), np.float32) for _ in anat.bodies]
        painter.touched.clear()
        fine = renderer.slab(z, offsets)
        painter.paint(fine, where, bodies, z, protocol.slice_mm, fractions,
                      anat.region(z)[0] == "disc")
        image = blur(block_average(fine, k), psf)
        calibrate(image, protocol)
        image += protocol.noise_hu * noise_bank_.crop(rng)
        images[s] = image
        coarse = [block_average(f, k) for i, f in enumerate(fractions) if i in painter.touched]
        if coarse:
            labels[s] = split_bodies_2d(bodies_from_fractions(coarse), (pixel, pixel),
                                        erosion_mm)
        kind, index, _ = anat.region(z)
        regions.append(anat.bodies[index].name if kind == "body" else
                       next((d[0] for d in anat.discs if d[1] <= z <= d[2]), anat.discs[-1][0]))

    cancellous = labels == 2
    if not cancellous.any():
        raise RuntimeError(f"phantom subject {person.subject_id}: no cancellous pixel on any "
                           f"slice (use more slices per subject)")
    imaged = images[cancellous]
    imaged_median = float(np.median(imaged))
    imaged_iqr = float(np.subtract(*np.percentile(imaged, [75, 25])))
    fit, offset, imaged_mode = set_cancellous_mode(images, cancellous, person.true_bmd)
    np.clip(images, *HU_LIMITS, out=images)
    if crop is not None and not labels[:, ~crop].any():
        images[:, ~crop] = HU_LIMITS[0]
    else:
        crop = None
    meta = {
        "johnson_su": {"a": fit.a, "b": fit.b, "loc": fit.loc, "scale": fit.scale},
        "slice_z_mm": [round(float(z), 2) for z in positions],
        "slice_regions": regions,
        "slice_thickness_mm": round(protocol.slice_mm, 3),
        "fov_mm": round(pixel * size, 2),
        "targeted_field": crop is not None,
        "protocol": protocol.to_dict(),
        "erosion_mm": erosion_mm,
        # what the imaging chain gave the cancellous pixels before the mode was set
        "imaged_cancellous_median_hu": round(imaged_median, 1),
        "imaged_cancellous_iqr_hu": round(imaged_iqr, 1),
        "imaged_cancellous_mode_hu": round(imaged_mode, 1),
        "mode_offset_hu": round(offset, 2),
        # the benchmark's BMD of the ground-truth mask (equal to true_bmd within
        # BMD_TOLERANCE_HU unless the fit is degenerate: very few cancellous pixels)
        "fitted_bmd_hu": round(float(fit.mode), 3),
        **anat.facts,
    }
    return Subject(person.subject_id, images, labels, (protocol.slice_mm, pixel, pixel),
                   site=site.code, sex=person.sex, age=float(person.age),
                   true_bmd=person.true_bmd, meta=meta)


def _check(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"[data.phantom] {name} must be an integer >= {minimum}, got {value!r}")
    return value


def _fill_splits(plan, splits, seed, image_size, slices_per_subject, bmd_scatter_hu,
                 erosion_mm, thin_slice_share, cache_dir, banks, progress, task) -> None:
    """Render (or read from the cache) every subject of the plan into ``splits``."""
    for split, site_code, first, count in plan:
        if count == 0 and split == "unlabelled":
            continue
        site = SITES[site_code]
        subjects = []
        for index in range(first, first + count):
            key = cache.subject_key(seed=seed, site=site_code, index=index,
                                    image_size=image_size, slices=slices_per_subject,
                                    bmd_scatter_hu=float(bmd_scatter_hu),
                                    erosion_mm=float(erosion_mm),
                                    thin_slice_share=float(thin_slice_share))
            subject = cache.load(cache_dir, key) if cache_dir else None
            if subject is None:
                if site_code not in banks:
                    banks[site_code] = SiteBanks(seed, site, image_size)
                rng = subject_rng(seed, site_code, index)
                person = draw_person(rng, subject_id(site_code, index), site_code,
                                     float(bmd_scatter_hu))
                thin = draw_thin_slice(thin_slice_rng(seed, site_code, index),
                                       thin_slice_share)
                subject = render_subject(person, site, image_size, slices_per_subject,
                                         banks[site_code], rng, float(erosion_mm), thin)
                if cache_dir:
                    cache.save(cache_dir, key, subject)
            subjects.append(subject)
            progress.advance(task)
        splits[split] = subjects


def make_phantom_dataset(seed: int = 0, image_size: int = 128, train_subjects: int = 16,
                         val_subjects: int = 2, test_subjects: int = 6, shift_subjects: int = 6,
                         slices_per_subject: int = 8, unlabelled_subjects: int = 0,
                         train_site: str = "N", bmd_scatter_hu: float = DEFAULT_BMD_SCATTER_HU,
                         erosion_mm: float = DEFAULT_EROSION_MM,
                         thin_slice_share: float = DEFAULT_THIN_SLICE_SHARE) -> Dataset:
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
    if isinstance(erosion_mm, bool) or not isinstance(erosion_mm, (int, float)) \
            or not erosion_mm > 0:
        raise UserError(f"[data.phantom] erosion_mm must be a number > 0, got {erosion_mm!r}")
    if isinstance(thin_slice_share, bool) or not isinstance(thin_slice_share, (int, float)) \
            or not 0 <= thin_slice_share <= 1:
        raise UserError(f"[data.phantom] thin_slice_share must be a number from 0 to 1, "
                        f"got {thin_slice_share!r}")
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
    cache_dir = cache.cache_root()
    total = sum(count for split, _, _, count in plan)
    with Progress(TextColumn("[bold]phantom subjects"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                  disable=total < PROGRESS_FROM) as progress:
        task = progress.add_task("phantom", total=total)
        _fill_splits(plan, splits, seed, image_size, slices_per_subject, bmd_scatter_hu,
                     erosion_mm, thin_slice_share, cache_dir, banks, progress, task)
    name = "phantom" if train_site == "N" else f"phantom-{train_site.lower()}"
    info = {
        "seed": seed, "image_size": image_size, "train_site": train_site,
        "shift_site": shift_site, "bmd_scatter_hu": float(bmd_scatter_hu),
        "erosion_mm": float(erosion_mm), "thin_slice_share": float(thin_slice_share),
        "thin_slice_mm": list(THIN_SLICE_MM),
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
