"""Drawing one subject's axial slices (tissue HU before blur and noise) and their labels.

Everything is drawn on the fine grid (the canvas handed in); the imaging chain is
:mod:`jmedbench_phantom.scanner`. Speed matters (the goal is >= 100 slices/s per core at
128 x 128), so work is done once per subject wherever the anatomy allows: the static layer
(air, couch, skin, fat, back muscles, vessels), the organs' quadratic forms (a slice only
compares them with its own size), and stamps of each posterior element, disc and rib (pasted at
the spine's position).

Partial volume: :meth:`SubjectRenderer.slab` draws the anatomy that changes within millimetres
of z (posterior elements, discs, ribs) at every sub-plane of the slab and averages them; organs
and soft tissue change slowly and are drawn once at the slice's centre; the vertebral bodies
come on top with analytic fractions over the whole slab (:mod:`jmedbench_phantom.vertebra`).
"""

from __future__ import annotations

import math

import numpy as np

from jmedbench_phantom.anatomy import Anatomy
from jmedbench_phantom.canvas import Canvas, Layer, Stamp, paint, paint_ring


POSTERIOR_WALL_MM = 0.8
"""Cortex of the posterior elements and ribs: thicker than the body's shell."""


def superellipse(canvas: Canvas, cx: float, cy: float, rx: float, ry: float, power: float,
                 dent: float, angle: float):
    """(window, mask) of |u/rx|^p + |v'/ry|^p <= 1 with the posterior dent (v' = v + dent *
    bump(u) where v > 0), in a frame turned by ``angle``."""
    found = canvas.window(cx, cy, max(rx, ry))
    if found is None:
        return None
    where, dx, dy = found
    c, s = math.cos(angle), math.sin(angle)
    u = dx * c + dy * s
    v = dy * c - dx * s
    if dent:
        bump = np.clip(1.0 - (u * (1.0 / (0.6 * rx))) ** 2, 0.0, None)
        v = v + dent * bump * (v > 0)
    f = np.abs(u * (1.0 / rx)) ** power + np.abs(v * (1.0 / ry)) ** power
    return where, f <= 1.0


class SubjectRenderer:
    """Draws one subject's slices on the fine grid: :meth:`slab`."""

    def __init__(self, anat: Anatomy, canvas: Canvas, planes: list[float] | None = None) -> None:
        """``planes``: every z that will be drawn, if known; organs absent from all of them
        are skipped."""
        self.anat = anat
        self.canvas = canvas
        self.ref = anat.spine.centre(0.0)
        self.static = self._draw_static()
        self._organs = self._organ_forms(planes)
        self._stamps: dict[tuple, Stamp] = {}
        self._layer = Layer(canvas.size)

    # -- once per subject ------------------------------------------------------------------
    def _draw_static(self) -> np.ndarray:
        anat, canvas = self.anat, self.canvas
        n = canvas.size
        img = np.full((n, n), -1000.0, np.float32)
        hu, sp = anat.hu, anat.spine
        bx, by, ax, ay, fat = anat.body_outline
        table_y = by + ay + 4.0  # the couch: a thin curved shell (3 mm) under the back
        if table_y - 3.0 < canvas.y0 + canvas.pixel_mm * (n - 1):
            where, q = canvas.quadratic(bx, table_y - 400.0, 420.0, 403.0)
            img[where][(q <= 1.0) & (q > (400.0 / 403.0) ** 2)] = hu["table"]
        # Skin (1.5 mm) and subcutaneous fat, their thickness measured at the back.
        found = canvas.quadratic(bx, by, ax, ay)
        if found is not None:
            where, q = found
            body = img[where]
            body[q <= 1.0] = hu["skin"]
            body[q <= (1.0 - 1.5 / ay) ** 2] = hu["subcutaneous"]
            body[q <= (1.0 - fat / ay) ** 2] = hu["fat"]
        back = anat.bodies[0].ry + 2 * sp.canal_h + 16.0
        for side in (-1, 1):  # erector spinae and multifidus
            x, y = sp.to_image(0.0, side * (sp.canal_w + 14.0), back)
            paint(img, canvas.ellipse(x, y, 21.0, 19.0, sp.angle), hu["muscle"])
        # Around the bodies: anterior longitudinal ligament, diaphragmatic crura, segmental
        # vessels and the psoas origins, a sleeve of soft tissue a few mm thick (real bodies are
        # seldom bare against fat).
        b, sleeve = anat.bodies[1], anat.facts.get("sleeve_mm", 4.0)
        x, y = sp.to_image(0.5 * sum(anat.span), 0.0, 0.0)
        paint(img, superellipse(canvas, x, y, b.rx + sleeve, b.ry + 0.8 * sleeve, b.power,
                                0.0, sp.angle), hu["muscle"])
        self._draw_vessels(img)
        return img

    def _organ_forms(self, planes: list[float] | None) -> list[tuple]:
        """(quadratic form, HU, scale at z) of what stays put while its size changes along z:
        liver and spleen tips shrinking caudally, kidneys widest at the hilum, the psoas
        growing from L1 to L2, bowel loops coming and going. A slice fills q <= scale^2.
        Forms absent from every plane in ``planes`` are not computed; forms of one ellipse
        (a kidney and its medulla, a loop's wall and content) share their quadratic."""
        forms, computed = [], {}
        for ellipse, value, size in self._organ_shapes():
            if planes is not None and not any(size(z) > 0 for z in planes):
                continue
            if ellipse not in computed:
                computed[ellipse] = self.canvas.quadratic(*ellipse)
            if computed[ellipse] is not None:
                forms.append((computed[ellipse], value, size))
        return forms

    def _organ_shapes(self) -> list[tuple]:
        """((cx, cy, ax, ay, angle), HU, scale at z) of every organ form, in drawing order."""
        anat = self.anat
        hu, sp = anat.hu, anat.spine
        cx, cy = self.ref
        h1 = anat.bodies[0].height
        span0, span1 = anat.span
        forms = [
            ((cx - 105.0, cy - 20.0, 55.0, 75.0, 0.0), hu["liver"],
             lambda z: math.sqrt(max(0.0, 1.0 - (z + 20.0) / (h1 + 45.0)))),
            ((cx + 98.0, cy + 20.0, 32.0, 45.0, -0.5), hu["spleen"],
             lambda z: math.sqrt(max(0.0, 1.0 - (z + 25.0) / (h1 + 15.0)))),
        ]
        for x, y, ax, ay, angle, zc in anat.kidneys:
            kx, ky = cx + x, cy + y
            size = (lambda zc: lambda z: math.sqrt(max(0.0, 1.0 - ((z - zc) / 55.0) ** 2)))(zc)
            kidney = (kx, ky, ax, ay, angle)
            forms.append((kidney, hu["kidney"], size))
            cortex = 6.0 / (0.5 * (ax + ay))  # the renal cortex is about 6 mm thick
            forms.append((kidney, hu["medulla"],
                          (lambda f, c: lambda z: max(f(z) - c, 0.0))(size, cortex)))
            # Renal sinus fat on the medial side, the pelvis inside it (about 0.62 its size).
            sinus = (kx - math.copysign(ax * 0.45, x), ky, ax * 0.45, ay * 0.35, angle)
            forms.append((sinus, hu["fat"],
                          (lambda zc: lambda z: 1.0 if abs(z - zc) < 14.0 else 0.0)(zc)))
            forms.append((sinus, hu["pelvis"],
                          (lambda zc: lambda z: 0.62 if abs(z - zc) < 14.0 else 0.0)(zc)))
        z_mid = 0.5 * (span0 + span1)
        rx_mid = 0.5 * (anat.bodies[0].rx + anat.bodies[1].rx)

        def psoas(z: float) -> float:  # 5 mm wide at the top of the stack, 13 mm at the bottom
            return (5.0 + 8.0 * min(max((z - span0) / (span1 - span0), 0.0), 1.0)) / 13.0

        for side in (-1, 1):
            x, y = sp.to_image(z_mid, side * (rx_mid + 10.0), 2.0)
            forms.append(((x, y, 13.0, 14.0, sp.angle + side * 0.3), hu["muscle"], psoas))
        for loop in anat.bowel:
            z0, z1, r = loop["z0"], loop["z1"], loop["r"]

            def size(z: float, z0=z0, z1=z1, shrink=0.0) -> float:
                if not z0 <= z <= z1:
                    return 0.0
                t = (z - z0) / (z1 - z0)
                return max(math.sqrt(max(0.05, 1.0 - (2.0 * t - 1.0) ** 2)) - shrink, 0.0)

            x, y = loop["x"], loop["y"]
            forms.append(((x, y, r, r, 0.0), hu["bowel_wall"], size))
            inner = -900.0 if loop["kind"] == "gas" else loop["value"]
            forms.append(((x, y, r, r, 0.0), inner,
                          (lambda f, s: lambda z: f(z, shrink=s))(size, 1.5 / r)))
            if loop["kind"] in ("mixed", "mixed_gas"):  # gas rises anteriorly (up the image)
                forms.append(((x, y - 0.6 * r, 0.75 * r, 0.35 * r, 0.0), -900.0,
                              (lambda f: lambda z: f(z) if f(z) * r > 4.0 else 0.0)(size)))
        return forms

    def _draw_vessels(self, img: np.ndarray) -> None:
        """Aorta (wall and lumen) and inferior vena cava, in front of the spine's mid-point."""
        anat, canvas = self.anat, self.canvas
        hu, sp = anat.hu, anat.spine
        span0, span1 = anat.span
        z_mid = 0.5 * (span0 + span1)
        ry = 0.5 * (anat.bodies[0].ry + anat.bodies[1].ry)
        dx, gap, r = anat.aorta
        self.aorta_xy = sp.to_image(z_mid, dx, -(ry + gap + r))
        paint(img, canvas.ellipse(*self.aorta_xy, r, r), hu["muscle"])  # the wall
        paint(img, canvas.ellipse(*self.aorta_xy, r - 1.5, r - 1.5), hu["aorta"])
        ix, gap_i, iax, iay = anat.ivc
        x, y = sp.to_image(z_mid, ix, -(ry + gap_i + iay))
        paint(img, canvas.ellipse(x, y, iax, iay), hu["ivc"])

    def _stamp(self, element: str, disc: str | None = None) -> Stamp:
        """One posterior element, or a disc, drawn at z = 0. L1's and L2's arches differ by
        less than a millimetre in position, so they share L1's stamps."""
        key = (element, disc)
        if key in self._stamps:
            return self._stamps[key]
        anat, canvas = self.anat, self.canvas
        layer = self._layer
        hu, sp = anat.hu, anat.spine
        b = anat.bodies[0]
        if disc:  # an adjoining body sets its outline: L1 for T12/L1, L2 for the others
            b = anat.bodies[0] if disc == anat.discs[0][0] else anat.bodies[1]
        rx, ry = (b.rx, b.ry) if disc else b.radii(b.top + 0.3 * b.height)
        back_wall = ry - b.dent
        vc = back_wall + 1.5 + sp.canal_h  # the canal's centre
        bone, marrow, a = hu["posterior_bone"], hu["marrow"], sp.angle

        def at(u: float, v: float) -> tuple[float, float]:
            return sp.to_image(0.0, u, v)

        if element == "transverse":
            for side in (-1, 1):
                tl = sp.transverse_len
                x, y = at(side * (sp.canal_w + 4.0 + tl / 2), vc - 1.0)
                paint_ring(layer, canvas, x, y, tl / 2 + 2.0, 4.0, a - side * 0.15,
                           POSTERIOR_WALL_MM, bone, marrow)
        elif element == "pedicles":
            for side in (-1, 1):
                x, y = at(side * (sp.canal_w + 2.5), back_wall + 0.9 * sp.canal_h)
                paint_ring(layer, canvas, x, y, 4.5, sp.canal_h + 3.0, a, POSTERIOR_WALL_MM, bone,
                           marrow)
        elif element == "facets":
            for side in (-1, 1):
                x, y = at(side * (sp.canal_w + 4.0), vc + 0.6 * sp.canal_h + 3.0)
                paint_ring(layer, canvas, x, y, 5.0, 6.5, a + side * 0.5, POSTERIOR_WALL_MM, bone,
                           marrow)
        elif element == "lamina":  # the roof of the canal (the canal is carved out after)
            x, y = at(0.0, vc + 0.45 * sp.canal_h + 1.0)
            paint_ring(layer, canvas, x, y, sp.canal_w + 5.0, 0.9 * sp.canal_h + 3.5, a,
                       POSTERIOR_WALL_MM, bone, marrow)
        elif element == "spinous":
            sl = sp.spinous_len
            x, y = at(0.0, vc + sp.canal_h + 3.0 + sl / 2)
            paint_ring(layer, canvas, x, y, 3.5, sl / 2 + 1.5, a, POSTERIOR_WALL_MM, bone, marrow)
        elif element == "canal":
            x, y = at(0.0, vc)
            paint(layer, canvas.ellipse(x, y, sp.canal_w + 1.0, sp.canal_h + 1.0, a), hu["fat"])
            paint(layer, canvas.ellipse(x, y, sp.canal_w - 1.5, sp.canal_h - 1.5, a), hu["sac"])
        elif element == "disc":  # slightly bulging beyond its endplates; softer nucleus
            x, y = at(0.0, 0.0)
            paint(layer, superellipse(canvas, x, y, rx * 1.04, ry * 1.04, b.power, b.dent, a),
                  hu["disc_annulus"])
            paint(layer, superellipse(canvas, x, y, rx * 0.6, ry * 0.55, b.power, 0.0, a),
                  hu["disc_nucleus"])
            if disc in anat.vacuum_discs:  # gas in a degenerated disc
                paint(layer, canvas.ellipse(x + 0.2 * rx, y, 0.35 * rx, 2.0, a + 0.2), -700.0)
        stamp = self._stamps[key] = layer.stamp()
        return stamp

    # -- per slice --------------------------------------------------------------------------
    def shift(self, z: float) -> tuple[int, int]:
        """Whole-pixel displacement of the spine at z from its position at z = 0."""
        cx, cy = self.anat.spine.centre(z)
        p = self.canvas.pixel_mm
        return round((cy - self.ref[1]) / p), round((cx - self.ref[0]) / p)

    def slab(self, z: float, offsets: list[float]) -> np.ndarray:
        """The slice's fine-grid HU without the vertebral bodies: slow anatomy at z, fast
        anatomy (posterior elements, discs, ribs) averaged over the sub-planes at ``offsets``.
        The bodies are added by :class:`jmedbench_phantom.vertebra.VertebraPainter`, whose
        partial volume along z is analytic over the whole slab."""
        base = self.static.copy()
        self._slow(base, z)
        total = np.zeros_like(base)
        for offset in offsets:
            sample = base.copy()
            self._fast(sample, z + offset)
            total += sample
        total *= 1.0 / len(offsets)
        return total

    def _slow(self, img: np.ndarray, z: float) -> None:
        for (where, q), value, size in self._organs:
            t = size(z)
            if t > 0:
                img[where][q <= t * t] = value
        anat, canvas = self.anat, self.canvas
        r = anat.aorta[2]
        for angle, width, value, z0, z1 in anat.plaques:  # calcified plaques are patchy in z
            if z0 <= z <= z1:
                px = self.aorta_xy[0] + (r - 0.8) * math.cos(angle)
                py = self.aorta_xy[1] + (r - 0.8) * math.sin(angle)
                paint(img, canvas.ellipse(px, py, r * width * 0.6, 1.3, angle + math.pi / 2),
                      value)

    def _rib(self, side: int, dx: float, dy: float) -> Stamp:
        """A rib's cross-section at z = -10 mm (it moves laterally and back with z)."""
        key = ("rib", side, dx)
        if key not in self._stamps:
            layer = self._layer
            hu = self.anat.hu
            x, y = self.ref[0] + side * dx, self.ref[1] + dy
            paint_ring(layer, self.canvas, x, y, 7.0, 4.5, side * -0.7, POSTERIOR_WALL_MM,
                       hu["rib_bone"], hu["marrow"])
            self._stamps[key] = layer.stamp()
        return self._stamps[key]

    def _fast(self, img: np.ndarray, z: float) -> None:
        anat = self.anat
        di, dj = self.shift(z)
        p = self.canvas.pixel_mm
        for side, dx, dy, z_end in anat.ribs:
            if z <= z_end:
                self._rib(side, dx, dy).paste(img, di + round(0.15 * (z + 10.0) / p),
                                              dj + side * round(0.25 * (z + 10.0) / p))
        kind, _, f = anat.region(z)
        if kind == "body":
            # The arch belongs to the vertebra: pedicles and transverse processes high, the
            # lamina and spinous process low, articular processes near the endplates.
            disc = None
            parts = [("transverse", 0.15 <= f <= 0.5), ("pedicles", 0.05 <= f <= 0.6),
                     ("facets", f <= 0.2 or f >= 0.9), ("lamina", f >= 0.35),
                     ("spinous", f >= 0.4), ("canal", True)]
        else:  # at a disc, the lower arch of the vertebra above and the facet joints show
            disc = next((d[0] for d in anat.discs if d[1] <= z <= d[2]), anat.discs[-1][0])
            parts = [("facets", True), ("lamina", f <= 0.6), ("spinous", f <= 0.8),
                     ("canal", True), ("disc", True)]
        for element, present in parts:
            if present:
                self._stamp(element, disc if element == "disc" else None).paste(img, di, dj)
