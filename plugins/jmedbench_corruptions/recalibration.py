"""Rebuild HU from an image whose grey levels lost their HU meaning (a phone photo of a monitor,
an 8-bit windowed export), using reference tissues found in the image itself, without labels.

Reference tissues and their HU (checked on the real TotalSegmentator example, L1/L2 slices:
air outside the body -987 to -991, subcutaneous fat peak -98 to -112, soft-tissue peak 18 to
52; measured with the body histogram in ``docs/robustness.md``):

- air outside the body: -1000
- fat: -100
- soft tissue (muscle and organs, the largest peak of the body above fat): 40

How they are found (:func:`find_reference_tissues`): in the slice's grey-level histogram the
background (air, or the black screen around it) is the lowest-lying large peak; above it, the
two highest peaks are fat (lower) and soft tissue (higher). Bone is a small, wide part of the
histogram and is not one of them on abdominal slices; lung bases (a peak between air and fat)
would be mistaken for fat, so the method is meant for L1/L2 slices below the lungs.

Two models of how grey level relates to HU:

- ``linear`` (an 8-bit export of a window): grey = (HU - low) / width, clipped to [0, 1]. HU is
  fitted by least squares through fat, soft tissue and, when the background is not clipped to
  black, air.
- ``display`` (a photo of a monitor showing a window): the camera's grey level is its sRGB-like
  encoding (gamma 1/2.2) of the screen luminance, and the screen shows ``black + (1 - black) *
  v**2.2`` for the window's drive value ``v``. The background is assumed black on screen (the
  window's lower edge lies above air, as in bone and soft-tissue windows), so its luminance
  gives ``black``; the chain is undone with those standard gammas and HU is fitted linearly to
  ``v`` through fat and soft tissue. A display or camera that departs from gamma 2.2 leaves a
  residual error that is part of the corruption (``phone_window_gamma`` measures it).

Where the background is clipped (shown black), large connected regions darker than 60 % of the
way from the background to fat (40 % of the way to soft tissue when fat is not found) are set to
air (-1000 HU): below the window their HU is unknown, and on these slices they are air outside
the body or gas inside it (or fat crushed to black with them). This keeps a model's input
CT-like; bone is never affected.

If fat cannot be found (heavy blur or JPEG at a small size merges a thin fat layer into its
neighbours), soft tissue alone sets the offset and the slope of the most common spine window
(W 2000) is assumed; if neither is found, that window's mapping (W 2000, L 500) is assumed.
:attr:`Recalibration.points` and :attr:`Recalibration.fallback` say which happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import find_peaks

AIR_HU, FAT_HU, SOFT_TISSUE_HU = -1000.0, -100.0, 40.0
HU_RANGE = (-1024.0, 3071.0)
DISPLAY_GAMMA = 2.2
FALLBACK_WINDOW = (500.0, 2000.0)  # (level, width) of a standard bone window
ASSUMED_BLACK = 0.02  # screen black (fraction of white) when no background shows it
MAX_BLACK = 0.03      # darkest screen black (monitor plus ambient light) taken as black
PLAUSIBLE_WIDTH = (250.0, 3500.0)  # HU spanned by grey levels 0..1 of a display window
MIN_PAIR_LEVELS = 6  # fat and soft tissue (140 HU apart) lie >= 10 levels apart in such a window;
                     # closer peaks are spikes of one tissue (flat JPEG blocks)
MIN_ORGAN_LEVELS = 9  # contrast-enhanced organs lie ~100 HU (>= 9 levels) above muscle


@dataclass
class References:
    """Grey levels of the reference tissues (None where not found) and whether the background
    is clipped (black), so its HU is unknown."""

    background: float | None
    fat: float | None
    soft_tissue: float | None
    background_clipped: bool


@dataclass
class Recalibration:
    """How an image was mapped back to HU: ``hu = offset + slope * x`` where ``x`` is the grey
    level (linear model) or the recovered drive value (display model)."""

    model: str
    slope: float
    offset: float
    references: References
    points: int            # reference tissues used (3, 2, 1 with the assumed slope, 0)
    fallback: bool = False


def find_reference_tissues(grey: np.ndarray, clip_floor: float | None = None) -> References:
    """Reference tissue grey levels of one slice (grey levels in [0, 1]), found without labels.

    Histogram: 256 bins, one per 8-bit level, of the slice smoothed with a Gaussian of sigma
    size/128 pixels. Tissue peaks are those of at least 10 % of the highest, below white.

    Background: the darkest cluster of at least 2 % of the pixels (a mean shift from the 2nd
    percentile; a peak test misses air that is a small shoulder beside a large fat peak). With
    ``clip_floor`` known (an export: 0), it is background when it lies on the floor. Otherwise
    (a photo) it is background when its luminance (grey ** 2.2) is at most ``MAX_BLACK``, dark
    enough to be the screen's black: when the body fills the image the darkest cluster is fat,
    which a bone window shows brighter than that.

    Fat and soft tissue: the pair of tissue peaks above the background with the most pixels and
    few pixels between them (see :func:`_fat_and_soft_tissue`); each level is refined from the
    pixels near its peak (a trimmed mean).
    """
    grey = np.asarray(grey, np.float64)
    # Peaks are located on a lightly smoothed copy: fine periodic patterns (moire) and noise
    # split a tissue's histogram peak in two. Sigma grows with the size, as the patterns do,
    # and stays small enough for a thin fat layer to keep its own peak; the levels are then
    # refined on the original pixels.
    located = ndi.gaussian_filter(grey, max(grey.shape) / 128, mode="nearest")
    counts, edges = np.histogram(located, bins=256, range=(-0.5 / 255, 1 + 0.5 / 255))
    centres = (edges[:-1] + edges[1:]) / 2
    smooth = ndi.gaussian_filter1d(counts.astype(np.float64), 1.5)
    peaks, _ = find_peaks(np.concatenate([[0.0], smooth, [0.0]]),
                          prominence=0.02 * smooth.max(), distance=3)
    peaks = peaks - 1  # undo the padding that lets a peak sit on the first or last level
    # Pixels clipped white (dense bone above a narrow window) pile up on the last level: a
    # peak there is clipping, not a tissue. Small peaks (scattered bone, noise) are no tissue.
    candidate = _refine(located, float(np.percentile(located, 2)), 3.0 / 255)
    level = int(np.clip(np.round(candidate * 255), 0, 255))
    tissues = peaks[peaks < 254]
    # (measured against the highest peak above the darkest cluster: air can outnumber fat)
    if tissues[tissues > level + 2].size:
        tissues = tissues[smooth[tissues] >= 0.1 * smooth[tissues[tissues > level + 2]].max()]

    background: float | None = None
    clipped = False
    above = tissues[tissues > level + 2]
    if np.mean(np.abs(located - candidate) <= 3.0 / 255) >= 0.02:
        if clip_floor is not None:
            clipped = candidate <= clip_floor + 0.5 / 255
            is_background = clipped
        else:
            # A photo's black: the darkest cluster if it is dark enough to be the screen's
            # black (air or anything below the window). When the body fills the image the
            # darkest cluster is fat, which a bone window shows brighter than that.
            clipped = True
            is_background = candidate ** DISPLAY_GAMMA <= MAX_BLACK
        if is_background:
            background = _refine(grey, candidate, 2.0 / 255)
    if background is None:
        above = tissues
        clipped = clip_floor is None or bool(np.mean(grey <= clip_floor + 0.5 / 255) >= 0.01)
    if above.size == 0:
        return References(background, None, None, clipped)
    floor = background if background is not None else -1.0
    located_body = located[located > floor + 2.0 / 255]
    fat_c, soft_c = _fat_and_soft_tissue(above, smooth, centres, located_body)
    if fat_c is None:
        return References(background, None, _refine(grey, soft_c, 3.0 / 255), clipped)
    gap = soft_c - fat_c
    return References(background, _refine(grey, fat_c, gap / 3), _refine(grey, soft_c, gap / 3),
                      clipped)


def _fat_and_soft_tissue(peaks: np.ndarray, heights: np.ndarray, centres: np.ndarray,
                         body: np.ndarray) -> tuple[float | None, float]:
    """Fat and soft tissue among the four highest tissue peaks.

    Fat is the lower peak of the pair with the most pixels such that the upper one is not in
    the brightest 10 % of the body (bone) and less than half of the body lies between them
    (partial volume and mixed tissue do; a pair with most of the body between it is fat and
    bone, or soft tissue and bone). Soft tissue is then the lowest peak above fat with at least
    half the height of the pair's upper peak: muscle and unenhanced organs (about 40 HU) rather
    than contrast-enhanced liver or spleen (100-150 HU), which can be as large. With no such
    pair, the highest peak alone is taken as soft tissue."""
    top = peaks[np.argsort(heights[peaks])[::-1][:4]]
    # bone is a small bright part of the body: a peak in its brightest 10 % is no soft tissue
    bright = np.percentile(body, 90) if body.size else np.inf
    best, best_score = None, -1.0
    for i in top:
        for j in top:
            if j < i + MIN_PAIR_LEVELS or centres[j] > bright:
                continue
            lo, hi = centres[i], centres[j]
            margin = max((hi - lo) / 8, 1.5 / 255)
            between = np.mean((body > lo + margin) & (body < hi - margin)) if body.size else 0
            score = heights[i] + heights[j]
            if between < 0.5 and score > best_score:
                best, best_score = (i, j), score
    if best is None:
        return None, float(centres[top[0]])
    fat, upper = best
    # (a lower candidate must be a tissue of its own, not the shoulder of the same one that
    # shading or noise split in two)
    soft = min((j for j in top if j >= fat + MIN_PAIR_LEVELS and j <= upper - MIN_ORGAN_LEVELS
                and heights[j] >= 0.5 * heights[upper]), default=upper)
    return float(centres[fat]), float(centres[soft])


def _refine(grey: np.ndarray, centre: float, half: float) -> float:
    """The mean of the pixels within ``half`` of ``centre``, re-centred twice: on 8-bit data
    noise dithers the levels, so the mean resolves a tissue's level finer than one grey level
    (a median would snap to a level and make the recalibration jump)."""
    for _ in range(3):
        near = grey[np.abs(grey - centre) <= half]
        if near.size == 0:
            break
        centre = float(near.mean())
    return float(centre)


def recalibrate(grey: np.ndarray, model: str = "linear") -> tuple[np.ndarray, Recalibration]:
    """Map grey levels in [0, 1] back to HU (float32), clipped to the CT range.

    Fit, in order of preference: through fat and soft tissue (and air when the background is
    not clipped); through soft tissue alone with the slope of the standard bone window (fat can
    vanish in a blurred or small image); the standard bone window (``fallback``).
    """
    grey = np.asarray(grey, np.float64)
    if model == "linear":
        refs = find_reference_tissues(grey, clip_floor=0.0)
        to_x = lambda g: np.asarray(g, np.float64)  # noqa: E731
    elif model == "display":
        refs = find_reference_tissues(grey)
        black = (refs.background ** DISPLAY_GAMMA if refs.background is not None
                 else ASSUMED_BLACK)
        to_x = lambda g: _drive_value(np.asarray(g, np.float64), black)  # noqa: E731
    else:
        raise ValueError(f"unknown recalibration model {model!r}")
    x = to_x(grey)
    points_x: list[float] = []
    points_hu: list[float] = []
    for level, hu_value in ((refs.fat, FAT_HU), (refs.soft_tissue, SOFT_TISSUE_HU)):
        if level is not None:
            points_x.append(float(to_x(level)))
            points_hu.append(hu_value)
    if model == "linear" and refs.background is not None and not refs.background_clipped:
        points_x.append(float(refs.background))
        points_hu.append(AIR_HU)
    level_hu, width_hu = FALLBACK_WINDOW
    slope, offset, used, fallback = width_hu, level_hu - width_hu / 2, 0, True
    if len(points_x) >= 2 and np.ptp(points_x) > 1e-6:
        fit_slope, fit_offset = np.polyfit(np.array(points_x), np.array(points_hu), 1)
        # A plausible window: fat darker than soft tissue, 250..3500 HU wide, its lower edge
        # (x = 0) at or below fat. Anything else is a wrong pair of peaks (JPEG blocks can
        # make spikes in the histogram), and soft tissue alone is safer.
        if PLAUSIBLE_WIDTH[0] <= fit_slope <= PLAUSIBLE_WIDTH[1] and fit_offset <= FAT_HU:
            slope, offset, used, fallback = fit_slope, fit_offset, len(points_x), False
    if fallback and refs.soft_tissue is not None:
        offset = SOFT_TISSUE_HU - slope * float(to_x(refs.soft_tissue))
        used, fallback = 1, False
    hu = offset + slope * x
    if refs.background_clipped and refs.background is not None and used:
        # Below the window everything was shown black: its HU is unknown. Large dark regions
        # are air (outside the body, or gas inside it), so connected regions (each at least
        # 1 % of the image) of smoothed grey levels below 60 % of the way from the background
        # to fat (40 % of the way to soft tissue when fat was not found: it is then crushed to
        # black with the air) are given air's HU rather than the window's lower edge. Small
        # dark specks (noise, JPEG ringing next to bone) keep the fitted value. Smoothed,
        # because when fat is shown a few levels above black noise alone would put much of it
        # below the threshold; grey levels, because near black the camera's encoding
        # stretches noise.
        if refs.fat is not None:
            threshold = refs.background + 0.6 * (refs.fat - refs.background)
        else:
            threshold = refs.background + 0.4 * (refs.soft_tissue - refs.background)
        smoothed = ndi.gaussian_filter(grey, max(1.0, max(grey.shape) / 128), mode="nearest")
        regions, count = ndi.label(smoothed < threshold)
        if count:
            large = np.bincount(regions.ravel()) >= 0.01 * grey.size
            large[0] = False
            hu = np.where(large[regions], AIR_HU, hu)
    hu = np.clip(hu, *HU_RANGE).astype(np.float32)
    return hu, Recalibration(model, float(slope), float(offset), refs, used, fallback)


def _drive_value(grey: np.ndarray, black: float) -> np.ndarray:
    """Undo camera encoding (1/2.2) and display gamma (2.2) with black level ``black``."""
    luminance = np.clip(grey, 0.0, 1.0) ** DISPLAY_GAMMA
    return np.clip((luminance - black) / max(1.0 - black, 1e-6), 0.0, 1.0) ** (1 / DISPLAY_GAMMA)
