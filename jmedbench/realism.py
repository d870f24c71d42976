"""How CT-like a dataset looks: image statistics that can be compared between any two datasets
(``jmedbench dataset compare A B``), e.g. a phantom against real scans.

Every statistic is computed from the subjects alone (images in HU, labels 0/1/2, spacing), so
it works for synthetic and real datasets alike:

- cancellous HU: median, robust SD (1.4826 x MAD) and the Johnson-Su fit (a, b, loc, scale,
  mode) of each subject's label-2 pixels, the median over subjects (a person's distribution:
  pooling a cohort would mix people of different BMD, broadening the core and hiding the
  tails);
- the HU profile across the vertebral-body outline (label > 0): mean HU of the pixels at each
  signed distance from the outline, -3 to +5 mm (negative inside the body);
- noise SD in fat and muscle: the median local SD (5 x 5 pixels) where the local mean is fat
  (-150..-50 HU) or muscle (20..80 HU), away from the bone;
- the cancellous texture's autocorrelation length: where the radially averaged
  autocorrelation of the label-2 pixels (minus their mean) first falls to 1/e, in mm;
- vertebral-body width (left-right) and depth (front-back) in mm: medians over the slices
  holding cancellous bone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from jmedbench.data import Dataset, Subject
from jmedbench.density.johnsonsu import fit_johnson_su

PROFILE_MM = tuple(float(d) for d in range(-3, 6))
FAT_HU, MUSCLE_HU = (-150.0, -50.0), (20.0, 80.0)
ROBUST_SD = 1.4826  # MAD -> SD for a normal distribution


@dataclass
class RealismStats:
    name: str
    subjects: int
    slices: int
    pixel_mm: float
    cancellous_median_hu: float
    cancellous_robust_sd_hu: float
    johnson_su: dict[str, float]
    cortical_mean_hu: float
    outline_profile_hu: dict[str, float]  # signed distance (mm, negative inside) -> mean HU
    noise_sd_fat_hu: float
    noise_sd_muscle_hu: float
    texture_acl_mm: float
    body_width_mm: float
    body_depth_mm: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _subjects(dataset: Dataset, split: str | None) -> list[Subject]:
    if split:
        return list(dataset.split(split))
    order = ("test", "train", "val", "shift")
    for name in order:  # the first split holding labelled cancellous bone
        subjects = [s for s in dataset.splits.get(name, []) if (s.label == 2).any()]
        if subjects:
            return subjects
    return []


def signed_distance(body: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Signed distance (mm) of pixel centres from the outline: negative inside the body."""
    padded = np.pad(body, 1)
    inside = ndimage.distance_transform_edt(padded, sampling=pixel_mm)[1:-1, 1:-1]
    outside = ndimage.distance_transform_edt(~padded, sampling=pixel_mm)[1:-1, 1:-1]
    # the outline lies half a pixel beyond the outermost centres on either side
    return np.where(body, -(inside - 0.5 * pixel_mm), outside - 0.5 * pixel_mm)


def _local_sd(image: np.ndarray, size: int = 5) -> tuple[np.ndarray, np.ndarray]:
    mean = ndimage.uniform_filter(image, size, mode="nearest")
    square = ndimage.uniform_filter(image * image, size, mode="nearest")
    n = size * size
    var = np.maximum(square - mean * mean, 0.0) * (n / (n - 1))
    return mean, np.sqrt(var)


def _autocorrelation_length(values: np.ndarray, mask: np.ndarray, pixel_mm: float) -> float:
    """1/e length of the radially averaged autocorrelation of ``values`` inside ``mask``."""
    if mask.sum() < 30:
        return math.nan
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    m = mask[box].astype(np.float64)
    f = np.where(mask[box], values[box] - values[mask].mean(), 0.0)
    shape = [2 * n for n in m.shape]
    corr = np.fft.irfft2(np.abs(np.fft.rfft2(f, shape)) ** 2, shape)
    overlap = np.fft.irfft2(np.abs(np.fft.rfft2(m, shape)) ** 2, shape)
    valid = overlap > 0.3 * overlap[0, 0]  # lags with enough pixel pairs
    corr = np.where(valid, corr / np.maximum(overlap, 1e-9), 0.0)
    corr /= corr[0, 0]
    iy = np.fft.fftfreq(shape[0], 1.0 / shape[0])[:, None]
    ix = np.fft.fftfreq(shape[1], 1.0 / shape[1])[None, :]
    radius = np.sqrt(iy * iy + ix * ix)
    lags = np.arange(0, 8)
    curve = []
    for r in lags:
        ring = valid & (np.abs(radius - r) < 0.5)
        curve.append(corr[ring].mean() if ring.any() else math.nan)
    curve = np.asarray(curve)
    below = np.flatnonzero(curve < math.exp(-1.0))
    if below.size == 0 or below[0] == 0:
        return math.nan
    k = below[0]
    y0, y1 = curve[k - 1], curve[k]
    frac = (y0 - math.exp(-1.0)) / (y0 - y1) if y0 != y1 else 0.0
    return float((k - 1 + frac) * pixel_mm)


def _distribution(values: np.ndarray) -> tuple[float, float, dict[str, float]]:
    """(median, robust SD, Johnson-Su parameters and mode) of one subject's cancellous HU."""
    median = float(np.median(values))
    robust = float(ROBUST_SD * np.median(np.abs(values - median)))
    fit = fit_johnson_su(values.astype(np.float64))
    return median, robust, {"a": fit.a, "b": fit.b, "loc": fit.loc, "scale": fit.scale,
                            "mode": float(fit.mode)}


def realism_stats(dataset: Dataset, split: str | None = None, name: str | None = None
                  ) -> RealismStats:
    """The statistics of one dataset (one split: by default the first of test, train, val,
    shift that holds labelled cancellous bone). Pixel sizes may differ between subjects; each
    statistic is measured in mm on each subject's own grid."""
    subjects = _subjects(dataset, split)
    if not subjects:
        raise ValueError(f"dataset {dataset.name}: no subject with cancellous labels")
    cancellous, cortical = [], []
    profile_sum = np.zeros(len(PROFILE_MM))
    profile_n = np.zeros(len(PROFILE_MM))
    fat_sd, muscle_sd, acl, widths, depths, pixels = [], [], [], [], [], []
    for subject in subjects:
        pixel = float(subject.spacing[1])
        pixels.append(pixel)
        image = subject.image.astype(np.float64)
        label = subject.label
        cancellous.append(image[label == 2])
        cortical.append(image[label == 1])
        for s in range(subject.n_slices):
            body = label[s] > 0
            if not (label[s] == 2).any():
                continue
            sd = signed_distance(body, pixel)
            for k, d in enumerate(PROFILE_MM):
                ring = np.abs(sd - d) <= 0.5 * pixel
                if d > 0:  # outside: only the neighbourhood of the body, not other bone
                    ring &= ~body
                if ring.any():
                    profile_sum[k] += image[s][ring].sum()
                    profile_n[k] += ring.sum()
            mean, local = _local_sd(image[s])
            far = sd > 10.0
            for low_high, out in ((FAT_HU, fat_sd), (MUSCLE_HU, muscle_sd)):
                region = far & (mean >= low_high[0]) & (mean <= low_high[1])
                # the window must itself lie in the tissue: its extreme pixels are within range
                region &= ndimage.minimum_filter(image[s], 5) > low_high[0] - 150
                region &= ndimage.maximum_filter(image[s], 5) < low_high[1] + 150
                if region.sum() >= 20:
                    out.append(local[region])
            acl.append(_autocorrelation_length(image[s], label[s] == 2, pixel))
            rows, cols = np.flatnonzero(body.any(1)), np.flatnonzero(body.any(0))
            widths.append((cols[-1] - cols[0] + 1) * pixel)
            depths.append((rows[-1] - rows[0] + 1) * pixel)
    per_subject = [_distribution(values) for values in cancellous if values.size]
    median, robust = (float(np.median([d[k] for d in per_subject])) for k in range(2))
    fit = {key: float(np.nanmedian([d[2][key] for d in per_subject]))
           for key in ("a", "b", "loc", "scale", "mode")}
    notes = []
    if len(fat_sd) == 0:
        notes.append("no fat region of 20+ pixels found for the noise SD")
    return RealismStats(
        name=name or dataset.name, subjects=len(subjects),
        slices=int(sum(s.n_slices for s in subjects)), pixel_mm=float(np.median(pixels)),
        cancellous_median_hu=median, cancellous_robust_sd_hu=robust,
        johnson_su=fit,
        cortical_mean_hu=float(np.concatenate(cortical).mean()),
        outline_profile_hu={f"{d:+.0f}": (float(profile_sum[k] / profile_n[k])
                                          if profile_n[k] else math.nan)
                            for k, d in enumerate(PROFILE_MM)},
        noise_sd_fat_hu=float(np.median(np.concatenate(fat_sd))) if fat_sd else math.nan,
        noise_sd_muscle_hu=(float(np.median(np.concatenate(muscle_sd))) if muscle_sd
                            else math.nan),
        texture_acl_mm=float(np.nanmedian(acl)) if np.isfinite(acl).any() else math.nan,
        body_width_mm=float(np.median(widths)), body_depth_mm=float(np.median(depths)),
        notes=notes)


ROWS = [
    ("cancellous median HU", lambda s: s.cancellous_median_hu, 1),
    ("cancellous robust SD HU", lambda s: s.cancellous_robust_sd_hu, 1),
    ("Johnson-Su a", lambda s: s.johnson_su["a"], 2),
    ("Johnson-Su b", lambda s: s.johnson_su["b"], 2),
    ("Johnson-Su loc", lambda s: s.johnson_su["loc"], 1),
    ("Johnson-Su scale", lambda s: s.johnson_su["scale"], 1),
    ("Johnson-Su mode (BMD) HU", lambda s: s.johnson_su["mode"], 1),
    ("cortical label mean HU", lambda s: s.cortical_mean_hu, 1),
    *[(f"outline profile {d:+.0f} mm HU",
       (lambda key: lambda s: s.outline_profile_hu[key])(f"{d:+.0f}"), 0) for d in PROFILE_MM],
    ("noise SD fat HU", lambda s: s.noise_sd_fat_hu, 1),
    ("noise SD muscle HU", lambda s: s.noise_sd_muscle_hu, 1),
    ("texture autocorrelation length mm", lambda s: s.texture_acl_mm, 2),
    ("body width mm", lambda s: s.body_width_mm, 1),
    ("body depth mm", lambda s: s.body_depth_mm, 1),
    ("pixel mm", lambda s: s.pixel_mm, 2),
]


def comparison_rows(stats: list[RealismStats]) -> list[tuple[str, list[str]]]:
    """(statistic, formatted value per dataset) for a side-by-side table."""
    out = []
    for title, get, digits in ROWS:
        out.append((title, [f"{get(s):.{digits}f}" if np.isfinite(get(s)) else "n/a"
                            for s in stats]))
    return out


def plot_comparison(stats: list[RealismStats], datasets: list[Dataset], path) -> None:
    """Cancellous HU histograms and the outline profiles, one colour per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for st, ds in zip(stats, datasets):
        # each subject centred on its own median, then on the dataset's: the shape of one
        # person's distribution, not the spread of a cohort's BMDs
        values = [s.image[s.label == 2] for s in _subjects(ds, None)]
        values = np.concatenate([v - np.median(v) for v in values if v.size])
        left.hist(values + st.cancellous_median_hu, bins=np.arange(-300, 801, 20),
                  density=True, histtype="step",
                  label=f"{st.name} (median {st.cancellous_median_hu:.0f})")
        right.plot(PROFILE_MM, [st.outline_profile_hu[f"{d:+.0f}"] for d in PROFILE_MM],
                   marker="o", label=st.name)
    left.set_xlabel("cancellous HU (each subject centred on the median of medians)")
    left.set_ylabel("density")
    left.legend(fontsize=8)
    right.axvline(0, color="grey", lw=0.5)
    right.set_xlabel("signed distance from the body outline, mm (negative inside)")
    right.set_ylabel("mean HU")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
