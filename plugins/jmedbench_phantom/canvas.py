"""Drawing in millimetres on a pixel grid, touching only the bounding box of each shape.

Image coordinates: x to the image right (the patient's left), y down the image (posterior);
pixel (i, j) has its centre at (x0 + j * pixel_mm, y0 + i * pixel_mm). Shapes are filled at
pixel centres (hard edges); the reconstruction blur is applied to the finished slice, so a label
drawn with the same shape marks the 50 % crossing of the blurred edge.
"""

from __future__ import annotations

import math

import numpy as np


class Canvas:
    def __init__(self, size: int, pixel_mm: float, centre_x: float, centre_y: float) -> None:
        self.size = size
        self.pixel_mm = pixel_mm
        self.x0 = centre_x - pixel_mm * (size - 1) / 2.0
        self.y0 = centre_y - pixel_mm * (size - 1) / 2.0
        self._index = np.arange(size, dtype=np.float32)

    def window(self, cx: float, cy: float, radius: float, radius_y: float | None = None):
        """Pixel slices covering the disc of ``radius`` mm around (cx, cy) (or the rectangle of
        half-sides ``radius`` by ``radius_y``) and the pixel-centre offsets (dx row vector, dy
        column vector) from (cx, cy); None when off the image."""
        p = self.pixel_mm
        ry = radius if radius_y is None else radius_y
        j0 = max(int(math.floor((cx - radius - self.x0) / p)), 0)
        j1 = min(int(math.ceil((cx + radius - self.x0) / p)) + 1, self.size)
        i0 = max(int(math.floor((cy - ry - self.y0) / p)), 0)
        i1 = min(int(math.ceil((cy + ry - self.y0) / p)) + 1, self.size)
        if j0 >= j1 or i0 >= i1:
            return None
        dx = (self.x0 - cx) + p * self._index[j0:j1]
        dy = (self.y0 - cy) + p * self._index[i0:i1]
        return (slice(i0, i1), slice(j0, j1)), dx[None, :], dy[:, None]

    def quadratic(self, cx: float, cy: float, ax: float, ay: float, angle: float = 0.0,
                  reach: float = 1.0):
        """(window slices, q) with q = (u/ax)^2 + (v/ay)^2 over the window that holds the
        ellipse scaled by ``reach``: q <= t^2 is the ellipse scaled by t, so a structure whose
        size changes along z is one comparison per slice. None when off the image."""
        if ax <= 0 or ay <= 0:
            return None
        found = self.window(cx, cy, max(ax, ay) * reach)
        if found is None:
            return None
        where, dx, dy = found
        if angle:
            c, s = math.cos(angle), math.sin(angle)
            u = dx * (c / ax) + dy * (s / ax)
            v = dy * (c / ay) - dx * (s / ay)
            return where, u * u + v * v
        u, v = dx * (1.0 / ax), dy * (1.0 / ay)
        return where, u * u + v * v

    def ellipse(self, cx: float, cy: float, ax: float, ay: float, angle: float = 0.0):
        """(window slices, boolean mask) of the ellipse with half-axes ax (along ``angle``,
        radians from the x axis) and ay; None when off the image or empty."""
        found = self.quadratic(cx, cy, ax, ay, angle)
        if found is None:
            return None
        return found[0], found[1] <= 1.0


def paint(image, shape, value: float) -> None:
    """Fill a shape from :meth:`Canvas.ellipse` (or None) with a value, on an image or a
    :class:`Layer`."""
    if shape is None:
        return
    if isinstance(image, Layer):
        image.fill(shape, value)
        return
    where, mask = shape
    image[where][mask] = value


def paint_ring(image, canvas: Canvas, cx: float, cy: float, ax: float, ay: float,
               angle: float, wall: float, wall_value: float, core_value: float) -> None:
    """A bone-like ellipse: a wall of ``wall`` mm (across its short axis; the ends, scaled
    alike, are thicker) at ``wall_value`` around a core, from one quadratic form."""
    found = canvas.quadratic(cx, cy, ax, ay, angle)
    if found is None:
        return
    where, q = found
    paint(image, (where, q <= 1.0), wall_value)
    core = 1.0 - wall / min(ax, ay)
    if core > 0:
        paint(image, (where, q <= core * core), core_value)


class Stamp:
    """A drawn group of shapes cut to its bounding box (values and where they were drawn), to be
    pasted again at whole-pixel shifts: the posterior elements of a vertebra look the same in
    many slices and only move with the spine."""

    def __init__(self, values: np.ndarray | None, mask: np.ndarray | None = None,
                 i0: int = 0, j0: int = 0) -> None:
        self.values, self.mask, self.i0, self.j0 = values, mask, i0, j0

    def paste(self, image: np.ndarray, di: int, dj: int) -> None:
        if self.values is None:
            return
        h, w = self.values.shape
        n_i, n_j = image.shape
        i0, j0 = self.i0 + di, self.j0 + dj
        a0, b0 = max(0, -i0), max(0, -j0)
        a1, b1 = min(h, n_i - i0), min(w, n_j - j0)
        if a0 >= a1 or b0 >= b1:
            return
        mask = self.mask[a0:a1, b0:b1]
        target = image[i0 + a0:i0 + a1, j0 + b0:j0 + b1]
        target[mask] = self.values[a0:a1, b0:b1][mask]


class Layer:
    """A scratch image (NaN = not drawn) that remembers the box it was drawn in, so cutting a
    :class:`Stamp` and wiping it for the next one touch only that box."""

    def __init__(self, size: int) -> None:
        self.data = np.full((size, size), np.nan, np.float32)
        self.box: list[int] | None = None

    def fill(self, shape, value: float) -> None:
        where, mask = shape
        self.data[where][mask] = value
        ys, xs = where
        if self.box is None:
            self.box = [ys.start, ys.stop, xs.start, xs.stop]
        else:
            b = self.box
            self.box = [min(b[0], ys.start), max(b[1], ys.stop), min(b[2], xs.start),
                        max(b[3], xs.stop)]

    def stamp(self) -> Stamp:
        if self.box is None:
            return Stamp(None)
        i0, i1, j0, j1 = self.box
        block = self.data[i0:i1, j0:j1]
        mask = ~np.isnan(block)
        stamp = Stamp(block.copy(), mask, i0, j0)
        block.fill(np.nan)
        self.box = None
        return stamp
