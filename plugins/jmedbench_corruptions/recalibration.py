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
PLAUSIBLE_WIDTH = (250.0, 3500.0)  # HU spanned by grey levels 0..1 of a display window
MIN_PAIR_LEVELS = 6  # fat and soft tissue (140 HU apart) lie >= 10 levels apart in such a window;
                     # closer peaks are spikes of one tissue (flat JPEG blocks)


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

    The histogram of the slice (256 bins, one per 8-bit level, of the slice smoothed with a
    Gaussian of sigma size/128 pixels) has a background peak (the lowest-lying large peak) and,
    above it, fat (lower) and soft tissue (higher) are the largest pair of peaks below white
    with few pixels between them; each level is refined from the pixels near its peak (a
    trimmed mean). ``clip_floor``: the grey level that values below the window take, if known
    (0 for an export); the background counts as clipped when it lies within half a level of
    it.
    """
    grey = np.asarray(grey, np.float64)
    # Peaks are located on a lightly smoothed copy: fine periodic patterns (moire) and noise
    # split a tissue's histogram peak in two. Sigma grows with the size, as the patterns do,
    # and stays small enough for a thin fat layer to keep its own peak; the levels are then
    # refined on the original pixels.
    located = ndi.gaussian_filter(grey, max(grey.shape) / 128, mode="nearest")
    counts, edges = np.histogram(located, bins=256, range=(-0.5 / 255, 1 + 0.5 / 255))
    smooth = ndi.gaussian_filter1d(counts.astype(np.float64), 1.5)
    peaks, _ = find_peaks(np.concatenate([[0.0], smooth, [0.0]]),
                          prominence=0.02 * smooth.max(), distance=3)
    peaks = peaks - 1  # undo the padding that lets a peak sit on the first or last level
    # The background is the darkest sizeable cluster: start at the 2nd percentile and move to
    # the mean of the pixels within 3 levels until it settles (mean shift). A peak test would
    # miss it when air is a small shoulder beside a large fat peak.
    background = _refine(located, float(np.percentile(located, 2)), 3.0 / 255)
    if np.mean(np.abs(located - background) <= 3.0 / 255) < 0.02:
        return References(None, None, None, True)
    background = _refine(grey, background, 2.0 / 255)
    background_level = int(np.clip(np.round(background * 255), 0, 255))
    # Pixels clipped white (dense bone above a narrow window) pile up on the last level: a
    # peak there is clipping, not a tissue.
    above = peaks[(peaks > background_level + 2) & (peaks < 254)]
    # A tissue is a sizeable part of the slice: small peaks (scattered bone, noise) are not.
    if above.size:
        above = above[smooth[above] >= 0.1 * smooth[above].max()]
    clipped = True
    if clip_floor is not None:
        clipped = background <= clip_floor + 0.5 / 255
    if above.size == 0:
        return References(background, None, None, clipped)
    located_body = located[located > background + 2.0 / 255]
    fat_c, soft_c = _fat_and_soft_tissue(above, smooth, (edges[:-1] + edges[1:]) / 2,
                                         located_body)
    if fat_c is None:
        return References(background, None, _refine(grey, soft_c, 3.0 / 255), clipped)
    gap = soft_c - fat_c
    return References(background, _refine(grey, fat_c, gap / 3), _refine(grey, soft_c, gap / 3),
                      clipped)


def _fat_and_soft_tissue(peaks: np.ndarray, heights: np.ndarray, centres: np.ndarray,
                         body: np.ndarray) -> tuple[float | None, float]:
    """The pair of peaks (fat < soft tissue) with the most pixels, among the four highest,
    such that few body pixels lie between them (only partial volume does: a pair with most of
    the body between it is fat and bone, or soft tissue and bone). With no such pair, the
    highest peak alone is taken as soft tissue."""
    top = peaks[np.argsort(heights[peaks])[::-1][:4]]
    best, best_score = None, -1.0
    for i in top:
        for j in top:
            if j < i + MIN_PAIR_LEVELS:
                continue
            lo, hi = centres[i], centres[j]
            margin = max((hi - lo) / 8, 1.5 / 255)
            between = np.mean((body > lo + margin) & (body < hi - margin)) if body.size else 0
            score = heights[i] + heights[j]
            if between < 0.3 and score > best_score:
                best, best_score = (i, j), score
    if best is None:
        return None, float(centres[top[0]])
    return float(centres[best[0]]), float(centres[best[1]])


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
        black = (refs.background or 0.0) ** DISPLAY_GAMMA
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
