"""Phone-photo corruptions: a CT slice shown on a monitor and photographed with a phone.

The simulated chain (:func:`photograph`), in the order light takes:

1. the viewer shows a window (level, width) as 8-bit drive values ``v``;
2. the screen emits ``black + (1 - black) v**gamma`` (gamma 2.2 nominal, black 2 % of white);
3. the camera sees the screen in perspective (around the image the viewer shows black),
   with moire from the screen's pixel grid beating against the sensor's, a reflection (glare),
   defocus and hand shake, and lens vignetting;
4. the sensor adds noise; white balance may be off (a colour cast), the camera encodes each
   channel with gamma 1/2.2;
5. the phone stores an 8-bit colour JPEG (luma ITU-R BT.601, chroma subsampled 4:2:0);
6. the photo is turned grey by the receiving software as the mean of its channels (a common
   naive conversion): with a colour cast, the chroma's coarser compression leaks into the
   grey image.

Each single corruption is that chain at nominal settings (bone window W2000/L500, JPEG quality
92) with one effect growing with severity; ``phone_photo`` combines all but glare. The HU
scale is destroyed and rebuilt from the photo by :func:`recalibration.recalibrate` (``display``
model: air, fat and soft tissue found in the image), so models see HU and BMD is measured on
recalibrated HU (``density="recalibrate"``). Glare is the exception (``not_applicable``): it
adds an unknown luminance over the spine, which no global map from reference tissues elsewhere
in the photo can remove, so a BMD read from it would be a wrong number presented as a
measurement; the composite leaves glare out for that reason.

Severity 0 is the untouched slice (no photo at all).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from skimage.transform import ProjectiveTransform

from jmedbench_corruptions._common import (convolve, corruption, disk_kernel, jpeg_roundtrip,
                                           path_kernel, scaled, to_uint8, warp_with_label,
                                           window)
from jmedbench_corruptions.recalibration import DISPLAY_GAMMA, recalibrate

FAMILY = "phone"
LUMA = np.array([0.299, 0.587, 0.114])          # the camera's (BT.601, JPEG's Y)
GREY_WEIGHTS = np.full(3, 1 / 3)                  # the receiving software's: the channel mean
PHOTO_CITATION = ("Screen-photo chain: display gamma (IEC 61966-2-1 sRGB), moire between "
                  "display and sensor sampling (Oster & Nishijima, Moire patterns, Sci Am "
                  "208(5), 1963), cos^4 vignetting; HU recalibration from reference tissues "
                  "as in phantomless QCT (Mueller et al., Eur J Radiol 79(3), 2011)")


@dataclass(frozen=True)
class PhotoSettings:
    """One photo of the screen. Lengths are in pixels of a 224-pixel image (scaled)."""

    level: float = 500.0
    width: float = 2000.0
    display_gamma: float = DISPLAY_GAMMA
    black: float = 0.02
    tilt: float = 0.0          # corner displacement, fraction of the size
    moire: float = 0.0         # relative amplitude of the moire pattern
    glare: tuple[float, float] = (0.0, 0.0)  # (size as a fraction of the image, peak)
    vignetting: float = 0.0    # relative fall-off at the corners
    cast: float = 0.0          # log-gain spread between colour channels
    defocus: float = 0.0       # disk radius (224-px pixels)
    shake: float = 0.0         # hand-shake path length (224-px pixels)
    sensor_noise: float = 0.003
    jpeg_quality: int = 92


NOMINAL = PhotoSettings()


def photograph(image: np.ndarray, label: np.ndarray, settings: PhotoSettings,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The grey photo (float in [0, 1], 8-bit levels) of a slice shown on a monitor, and the
    label map moved with it."""
    h, w = image.shape
    s = settings
    drive = to_uint8(window(image, s.level, s.width)) / 255.0
    luminance = s.black + (1.0 - s.black) * drive ** s.display_gamma
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    if s.tilt > 0:
        luminance, label = _perspective(luminance, label, s.tilt, s.black, rng)
    if s.moire > 0:
        period = scaled(rng.uniform(5.0, 9.0), (h, w))
        angle = rng.uniform(0, np.pi)
        bend = rng.uniform(-1.5, 1.5)
        # A straight grating plus a quadratic term: the beat frequency drifts across the
        # photo (lens distortion, screen curvature), so the fringes bend.
        radius2 = ((rows - h / 2) ** 2 + (cols - w / 2) ** 2) / max(h, w)
        phase = 2 * np.pi * (cols * np.cos(angle) + rows * np.sin(angle) + bend * radius2) / period
        luminance = luminance * (1.0 + s.moire * np.cos(phase))
    if s.glare[1] > 0:
        # A reflection of a lamp or window: a soft bright patch somewhere on the screen.
        cy, cx = rng.uniform(0.2, 0.8, 2) * (h, w)
        elongation = rng.uniform(0.6, 1.6)
        sy, sx = s.glare[0] * h * elongation, s.glare[0] * w / elongation
        luminance = luminance + s.glare[1] * np.exp(-((rows - cy) ** 2 / (2 * sy ** 2)
                                                      + (cols - cx) ** 2 / (2 * sx ** 2)))
    if s.defocus > 0:
        luminance = convolve(luminance, disk_kernel(scaled(s.defocus, (h, w)), 0.5))
    if s.shake > 0:
        luminance = convolve(luminance, _shake_kernel(scaled(s.shake, (h, w)), rng))
    if s.vignetting > 0:
        cy, cx = (h - 1) / 2 + rng.normal(0, 0.03 * h), (w - 1) / 2 + rng.normal(0, 0.03 * w)
        r2 = ((rows - cy) ** 2 + (cols - cx) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)
        luminance = luminance * (1.0 - s.vignetting * r2)
    luminance = luminance + rng.normal(0.0, s.sensor_noise, luminance.shape)
    gains = np.ones(3)
    if s.cast > 0:
        hue = rng.uniform(0, 2 * np.pi)
        gains = np.exp(s.cast * np.cos(hue + np.array([0.0, 2.0, 4.0]) * np.pi / 3))
        gains /= LUMA @ gains  # the camera's exposure keeps the mean brightness
    channels = np.clip(luminance[..., None] * gains, 0.0, 1.0)
    encoded = to_uint8(channels ** (1.0 / DISPLAY_GAMMA))
    decoded = jpeg_roundtrip(encoded, s.jpeg_quality) / 255.0
    grey = decoded @ GREY_WEIGHTS
    return to_uint8(grey) / 255.0, label


def _perspective(luminance, label, tilt, bezel, rng):
    """Warp by the homography that moves the image corners inward by up to ``tilt`` of the
    size (the whole screen stays in the photo); the label map follows (nearest)."""
    h, w = luminance.shape
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float64)
    moved = corners + inward * rng.uniform(0.2, 1.0, (4, 2)) * tilt * np.array([w, h])
    # photo pixel -> screen pixel (x, y); from_estimate is scikit-image >= 0.26's spelling
    if hasattr(ProjectiveTransform, "from_estimate"):
        transform = ProjectiveTransform.from_estimate(moved, corners)
    else:  # pragma: no cover - older scikit-image
        transform = ProjectiveTransform()
        transform.estimate(moved, corners)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    source = transform(np.column_stack([cols.ravel(), rows.ravel()]))
    return warp_with_label(luminance, label, source[:, 1].reshape(h, w),
                           source[:, 0].reshape(h, w), fill=bezel)


def _shake_kernel(length: float, rng: np.random.Generator) -> np.ndarray:
    """A hand-shake path: a smoothed random walk of total length ``length`` pixels."""
    steps = rng.normal(0, 1, (24, 2))
    steps = np.cumsum(steps, axis=0)
    steps -= steps.mean(axis=0)
    extent = np.sum(np.linalg.norm(np.diff(steps, axis=0), axis=1))
    steps *= length / max(extent, 1e-9)
    return path_kernel(steps[:, 0], steps[:, 1])


def _photo_corruption(name: str, params, description: str, make_settings, *,
                      geometric: bool = False, density: str = "recalibrate"):
    """A phone corruption: the photo chain with settings per severity, then recalibration."""

    def fn(image, label, param, rng):
        grey, label = photograph(image, label, make_settings(param), rng)
        hu, _ = recalibrate(grey, model="display")
        return hu, label

    fn.__doc__ = description
    return corruption(name, FAMILY, params, description, PHOTO_CITATION, geometric=geometric,
                      density=density)(fn)


# (level, width, display gamma, black level): the bone window as displayed by a monitor whose
# curve is darker than the 2.2 the recalibration assumes (bright bone is compressed) and whose
# black is lifted by ambient light (fat is crushed towards black). The window stays the same:
# a narrower one would also quantise HU more finely, which works against the severity.
WINDOW_GAMMA = [(500.0, 2000.0, 2.4, 0.02), (500.0, 2000.0, 2.6, 0.023),
                (500.0, 2000.0, 2.8, 0.026), (500.0, 2000.0, 3.0, 0.034),
                (500.0, 2000.0, 3.2, 0.042)]

phone_window_gamma = _photo_corruption(
    "phone_window_gamma", WINDOW_GAMMA,
    "Display windowing and gamma: the bone window (W2000/L500) on a monitor whose gamma "
    "(2.4..3.2) departs from the 2.2 the recalibration assumes, compressing bright bone, and "
    "whose black ambient light lifts (2 % to 4.2 % of white), crushing fat towards black",
    lambda p: replace(NOMINAL, level=p[0], width=p[1], display_gamma=p[2], black=p[3]))

phone_perspective = _photo_corruption(
    "phone_perspective", [0.03, 0.06, 0.09, 0.12, 0.16],
    "Perspective tilt: the screen photographed at an angle (corners moved inward by up to the "
    "given fraction); the label map moves with it",
    lambda p: replace(NOMINAL, tilt=p), geometric=True)

phone_moire = _photo_corruption(
    "phone_moire", [0.03, 0.05, 0.08, 0.11, 0.15],
    "Moire: a slightly curved periodic pattern from the screen's pixel grid beating against "
    "the sensor's (relative amplitude)",
    lambda p: replace(NOMINAL, moire=p))

phone_glare = _photo_corruption(
    "phone_glare", [(0.06, 0.15), (0.09, 0.25), (0.12, 0.35), (0.15, 0.45), (0.18, 0.6)],
    "Screen glare: the reflection of a lamp or window, a soft bright patch (size as a fraction "
    "of the image, peak as a fraction of white) anywhere on the screen. Density not "
    "applicable: no global recalibration can undo light added over the spine",
    lambda p: replace(NOMINAL, glare=p), density="not_applicable")

phone_vignetting = _photo_corruption(
    "phone_vignetting", [0.10, 0.20, 0.30, 0.40, 0.50],
    "Lens vignetting: brightness falls off towards the corners (relative fall-off)",
    lambda p: replace(NOMINAL, vignetting=p))

phone_colour_cast = _photo_corruption(
    "phone_colour_cast", [0.4, 0.8, 1.2, 1.6, 2.0],
    "Colour cast turned grey: white balance off (channel gains spread by the given log-gain), "
    "bright channels saturate, the colour JPEG's coarser chroma leaks into the grey image "
    "made as the channel mean (not the camera's BT.601 luma)",
    lambda p: replace(NOMINAL, cast=p))

phone_defocus = _photo_corruption(
    "phone_defocus", [1.5, 2.5, 3.5, 5.0, 7.0],
    "Camera out of focus: disk blur of the given radius (224-px pixels, scaled)",
    lambda p: replace(NOMINAL, defocus=p))

phone_hand_shake = _photo_corruption(
    "phone_hand_shake", [3.0, 6.0, 9.0, 13.0, 18.0],
    "Hand shake: blur along a random camera path of the given length (224-px pixels, scaled)",
    lambda p: replace(NOMINAL, shake=p))

phone_jpeg = _photo_corruption(
    "phone_jpeg", [75, 50, 30, 20, 5],
    "The photo re-compressed (messaging apps): JPEG quality 75 down to 5",
    lambda p: replace(NOMINAL, jpeg_quality=p))


COMPOSITE_JPEG = [85, 75, 60, 45, 30]  # what phones and messaging apps store


def _composite(severity: int) -> PhotoSettings:
    """All effects but glare, each at 60 % of its single-corruption strength (vignetting 30 %);
    JPEG quality and sensor noise as a phone and a messaging app would give them."""
    i = severity - 1
    f = 0.6
    gamma = DISPLAY_GAMMA + f * (WINDOW_GAMMA[i][2] - DISPLAY_GAMMA)
    return replace(NOMINAL, display_gamma=gamma,
                   tilt=f * phone_perspective.apply.params[i],
                   moire=f * phone_moire.apply.params[i],
                   # phones correct most lens shading in software: less than the rest
                   vignetting=0.5 * f * phone_vignetting.apply.params[i],
                   cast=f * phone_colour_cast.apply.params[i],
                   defocus=f * phone_defocus.apply.params[i],
                   shake=f * phone_hand_shake.apply.params[i],
                   sensor_noise=NOMINAL.sensor_noise * (1 + 0.25 * i),
                   jpeg_quality=COMPOSITE_JPEG[i])


phone_photo = _photo_corruption(
    "phone_photo", [1, 2, 3, 4, 5],
    "A phone photo of the screen: bone window with gamma drift, tilt, moire, vignetting, "
    "colour cast, defocus, shake, sensor noise and JPEG (quality 85 down to 30) together (each "
    "effect at 60 % of its own severity; no glare); the label map moves with the tilt",
    _composite, geometric=True)

CORRUPTIONS = [phone_window_gamma, phone_perspective, phone_moire, phone_glare,
               phone_vignetting, phone_colour_cast, phone_defocus, phone_hand_shake,
               phone_jpeg, phone_photo]
