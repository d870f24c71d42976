"""The L1/L2 vertebral bodies as bone tissue on the fine grid, with partial volume.

Each fine pixel of each slice's slab gets the volume fractions of what it
holds, computed analytically from the geometry (so a 0.4 mm shell on a 0.4 mm grid is 0.4 mm
of bone, not one pixel or none):

- in-plane: the depth of the pixel below the body outline (radial distance to the
  superellipse, grown outwards by osteophytes near their endplate), giving the fraction inside
  the outline and the fraction that is cortical shell;
- along z: the body occupies, in its own tilted frame, the height between two endplate
  surfaces that are concave (``concavity`` at the centre), dented by Schmorl's nodes and, in a
  compression fracture, lowered anteriorly (``wedge``); the overlap of the slab with the body
  and with the endplates' compact bone gives their fractions (exact for a box-shaped slice
  sensitivity profile).

Inside the body, what is not compact bone is cancellous bone: marrow plus trabecular tissue of
volume fraction ``bvtv`` modulated by a band-pass texture (denser towards the shell and under
the endplates, absent in the basivertebral vein, dense in bone islands). Inside the outline but
outside the body's height is disc. The body fraction of every fine pixel is returned as well,
with the outline grown by ``READER_MARGIN_MM`` in plane as a reader draws it: it is the truth
from which the labels are derived (:mod:`jmedbench.cancellous`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from jmedbench_phantom.anatomy import Anatomy, VertebralBody
from jmedbench_phantom.canvas import Canvas


# Where the labelled outline lies: this far outside the bone's surface, in plane. Real masks are
# drawn (by hand, or by TotalSegmentator trained on hand-drawn masks) on the blurred image, so
# their outline sits where the rim has fallen to 72-86 % of its peak (the three real cases,
# `dataset compare`); the bone's own surface sits at 90 % in the phantom, 0.25 mm out at 82 %.
READER_MARGIN_MM = 0.25


def _overlap(lo: np.ndarray, hi: np.ndarray, a, b) -> np.ndarray:
    """Length of [lo, hi] ∩ [a, b] (arrays broadcast)."""
    return np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None)


@dataclass
class BodySlice:
    """One body's in-plane geometry around one slice (computed once, used by every sub-plane)."""

    index: int
    body: VertebralBody
    v: np.ndarray            # posterior coordinate (mm) of each window pixel
    inside_xy: np.ndarray    # fraction of the pixel inside the outline
    label_xy: np.ndarray     # fraction inside the reader's outline (READER_MARGIN_MM further out)
    shell_xy: np.ndarray     # fraction of the pixel that is cortical shell (or osteophyte)
    top: np.ndarray          # upper endplate surface, mm below the body's top (at v = 0)
    bottom: np.ndarray       # lower endplate surface, mm below the body's top
    cancellous: np.ndarray   # HU of cancellous bone (marrow + textured trabecular tissue)
    subchondral: float       # extra HU of cancellous bone right under an endplate
    dense_hu: float


class VertebraPainter:
    """Draws the bodies of one subject into fine-grid sub-planes."""

    def __init__(self, anat: Anatomy, canvas: Canvas) -> None:
        self.anat = anat
        self.canvas = canvas
        self.fine_mm = canvas.pixel_mm
        bodies = anat.bodies
        spur = max((o[3] for o in anat.osteophytes), default=0.0)  # the longest osteophyte
        # half-sides of the window holding either body (turned by the spine's angle)
        rx = max(b.rx for b in bodies) * 1.02 + spur + 1.5
        ry = max(b.ry for b in bodies) * 1.02 + spur + 1.5
        c, s = abs(math.cos(anat.spine.angle)), abs(math.sin(anat.spine.angle))
        self.half = (rx * c + ry * s, rx * s + ry * c)
        self.touched: set[int] = set()  # bodies drawn since the caller last cleared this
        self.reach_z = max(abs(anat.spine.tilt) * max(b.ry for b in bodies), 0.0) + 3.0

    def window(self, z: float):
        cx, cy = self.anat.spine.centre(z)
        return self.canvas.window(cx, cy, *self.half)

    def prepare(self, z: float, half_slab: float, texture: np.ndarray | None
                ) -> tuple[tuple, list[BodySlice]]:
        """In-plane geometry of every body that the slab [z - half_slab, z + half_slab] can
        touch; ``texture``: a zero-mean unit-SD field at least as large as the window."""
        found = self.window(z)
        if found is None:
            return None, []
        where, dx, dy = found
        anat, f = self.anat, self.fine_mm
        sp = anat.spine
        c, s = math.cos(sp.angle), math.sin(sp.angle)
        u = dx * c + dy * s
        v = dy * c - dx * s
        out = []
        for index, b in enumerate(anat.bodies):
            if not (b.top - half_slab - self.reach_z <= z
                    <= b.top + b.height + half_slab + self.reach_z):
                continue
            out.append(self._geometry(index, b, z, u, v, f, texture, where))
        return where, out

    def _geometry(self, index: int, b: VertebralBody, z: float, u: np.ndarray, v: np.ndarray,
                  f: float, texture: np.ndarray | None, where) -> BodySlice:
        anat, hu = self.anat, self.anat.hu
        rx, ry = b.radii(z)
        bump = np.clip(1.0 - (u * (1.0 / (0.6 * rx))) ** 2, 0.0, None)
        vd = v + b.dent * bump * (v > 0)
        p = b.power
        g = ((np.abs(u) * (1.0 / rx)) ** p + (np.abs(vd) * (1.0 / ry)) ** p) ** (1.0 / p)
        rho = np.sqrt(u * u + vd * vd)
        depth = rho * (1.0 / np.maximum(g, 1e-3) - 1.0)  # mm below the outline along the ray
        np.minimum(depth, 60.0, out=depth)
        # Osteophytes: the rim grows outwards near an endplate, over an angular sector.
        grow = None
        osteophyte = False
        for bi, endplate, a0, length, width, reach in anat.osteophytes:
            dz = abs(z - endplate)
            if bi != index or dz >= reach:
                continue
            if grow is None:
                angle = np.arctan2(v, u)
                grow = np.zeros_like(depth)
            r0 = b.boundary_distance(a0, z)
            d_angle = (angle - a0 + math.pi) % (2 * math.pi) - math.pi
            grow = np.maximum(grow, length * (1.0 - dz / reach)
                              * np.exp(-(d_angle * r0 / width) ** 2))
            osteophyte = True
        outline_depth = depth + grow if osteophyte else depth
        inside = np.clip(outline_depth / f + 0.5, 0.0, 1.0)
        label = np.clip((outline_depth + READER_MARGIN_MM) / f + 0.5, 0.0, 1.0)
        t = b.shell
        shell = _overlap(outline_depth - 0.5 * f, outline_depth + 0.5 * f, 0.0, t) / f
        if osteophyte:  # an osteophyte is compact bone all through
            spur = (depth < 0) & (outline_depth > 0)
            shell = np.where(spur, inside, shell)
        # The basivertebral foramen: the posterior wall opens around the midline at mid-height.
        mid = b.top + 0.5 * b.height
        if abs(z - mid) < 0.18 * b.height:
            shell = np.where((np.abs(u) < 2.2) & (v > 0), 0.0, shell)
        # Endplate surfaces (mm below the body's top in its tilted frame).
        cup = b.concavity * np.clip(1.0 - g * g, 0.0, None)
        top = cup.copy()
        bottom = b.height - cup
        if b.wedge:  # anterior compression: the upper endplate drops in front
            top = top + b.wedge * b.height * np.clip(-v / ry * 0.5 + 0.5, 0.0, 1.0)
        for nu, nv, radius, dip, which in b.schmorl:
            bowl = dip * np.exp(-((u - nu) ** 2 + (v - nv) ** 2) / (radius * radius))
            if which == 0:
                top = top + bowl
            else:
                bottom = bottom - bowl
        # Cancellous bone: textured trabecular fraction, denser towards the shell.
        bvtv = b.bvtv * (1.0 + 0.25 * np.exp(-np.maximum(depth, 0.0) / 2.0))
        if texture is not None:
            tx = texture[:u.shape[0], :u.shape[1]]
            bvtv = bvtv * np.clip(1.0 + b.texture * tx, 0.05, None)
        marrow, tissue = hu["bone_marrow"], hu["trabecular_tissue"]
        cancellous = marrow + (tissue - marrow) * bvtv
        # Basivertebral vein: a channel of blood from the posterior wall to the centre.
        if abs(z - mid) < 0.25 * b.height:
            vein = (np.abs(u) < 1.6 + 1.6 * np.clip(vd / ry, 0.0, 1.0)) & (vd > 0.15 * ry)
            cancellous = np.where(vein, hu["vein"], cancellous)
        for bi, iu, iv, zc, radius in anat.islands:  # sclerotic bone islands
            rs = math.sqrt(max(radius * radius - (z - zc) ** 2, 0.0))
            if bi == index and rs > 0.5:
                island = np.clip((rs - np.sqrt((u - iu) ** 2 + (v - iv) ** 2)) / f + 0.5, 0, 1)
                cancellous = cancellous + island * (0.8 * hu["cortex"] - cancellous)
        subchondral = 0.15 * b.bvtv * (tissue - marrow) * (1.0 + b.endplate)
        return BodySlice(index, b, v, inside, label, shell, top, bottom,
                         cancellous.astype(np.float32), float(subchondral), float(hu["cortex"]))

    def paint(self, plane: np.ndarray, where, bodies: list[BodySlice], z: float, dz: float,
              fractions: list[np.ndarray], in_disc: bool) -> None:
        """Add the bodies to a plane at height z standing for the slab of ``dz`` mm around it
        (the overlaps along z are exact over the slab, tilt included); the body fraction of
        every pixel is added to ``fractions[body index]`` (a fine-grid array each). Inside the
        outline, what is not body is disc: the plane's own (its disc stamp) where the slab's
        centre lies in a disc, else the disc's mean HU."""
        if not bodies or where is None:
            return
        tilt = self.anat.spine.tilt
        background = plane[where]
        disc_hu = 0.5 * (self.anat.hu["disc_annulus"] + self.anat.hu["disc_nucleus"])
        outline = np.zeros_like(background)
        bone = np.zeros_like(background)
        occupied = np.zeros_like(background)
        for g in bodies:
            b = g.body
            zb = (z - b.top) - tilt * g.v  # height in the body's tilted frame
            lo, hi = zb - 0.5 * dz, zb + 0.5 * dz
            in_z = _overlap(lo, hi, g.top, g.bottom) * (1.0 / dz)
            if not in_z.any():
                continue
            plate = (_overlap(lo, hi, g.top, g.top + b.endplate)
                     + _overlap(lo, hi, g.bottom - b.endplate, g.bottom)) * (1.0 / dz)
            body = g.inside_xy * in_z
            shell = g.shell_xy * in_z
            plate *= g.inside_xy
            dense = np.minimum(np.maximum(shell, plate), body)
            near = np.minimum(np.abs(zb - g.top), np.abs(g.bottom - zb))
            cancellous = g.cancellous + g.subchondral * np.exp(-near * (1.0 / 2.5))
            # Where the endplate dominates, the dense bone is porous: a fraction
            # ``endplate_density`` of compact bone, the rest marrow and trabeculae.
            rho = b.endplate_density
            dense_hu = np.where(plate > shell, rho * g.dense_hu + (1.0 - rho) * cancellous,
                                g.dense_hu)
            bone += dense * dense_hu + (body - dense) * cancellous
            occupied += body
            np.maximum(outline, g.inside_xy, out=outline)
            fractions[g.index][where] += g.label_xy * in_z
            self.touched.add(g.index)
        np.minimum(occupied, outline, out=occupied)
        # Inside the outline and outside the bodies' height lies disc (the disc stamp itself
        # where the slice's centre is in a disc); outside the outline, what was drawn before.
        gap = outline - occupied
        fill = background if in_disc else disc_hu
        plane[where] = background * (1.0 - outline) + gap * fill + bone
