"""One subject's anatomy around L1/L2: sizes, positions and HU of every structure (drawn by
:mod:`jmedbench_phantom.render`).

Lengths in mm, values in HU (before the site's calibration offset, blur and noise). z runs
caudally from L1's upper endplate (z = 0). The spine has its own frame: u lateral (to the
image right), v posterior, centred on the vertebral body and turned by ``spine.angle``.

What is labelled (class 1 cortical, 2 cancellous) is only the L1/L2 vertebral body: its shell
(cortical, including osteophytes growing from its rim and sclerotic bone islands inside it) and
its interior (cancellous). Posterior elements, ribs, discs, calcified plaques and contrast are
drawn but never labelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from jmedbench_phantom.cohort import Person, Site

CONTRAST_PHASES = {
    # phase: (probability, {tissue: (low, high) HU}); values from typical abdominal CT protocols
    "native": (0.25, {"aorta": (35, 50), "ivc": (35, 50), "kidney": (25, 35),
                      "medulla": (25, 35), "liver": (50, 65), "spleen": (42, 50),
                      "pelvis": (5, 15)}),
    "arterial": (0.2, {"aorta": (280, 380), "ivc": (70, 100), "kidney": (180, 250),
                       "medulla": (70, 100), "liver": (65, 80), "spleen": (100, 140),
                       "pelvis": (5, 15)}),
    "portal": (0.45, {"aorta": (140, 190), "ivc": (120, 160), "kidney": (150, 200),
                      "medulla": (130, 180), "liver": (95, 120), "spleen": (110, 130),
                      "pelvis": (5, 15)}),
    "excretory": (0.1, {"aorta": (100, 130), "ivc": (90, 120), "kidney": (120, 150),
                        "medulla": (120, 150), "liver": (80, 100), "spleen": (90, 110),
                        "pelvis": (400, 900)}),
}


@dataclass
class VertebralBody:
    """Superellipse cross-section |u/rx|^p + |v'/ry|^p <= 1, v' = v + dent * bump(u) behind
    the centre (the concave posterior wall facing the canal), between two concave endplates.

    Physical bone, drawn on the fine grid (:mod:`jmedbench_phantom.vertebra`): a cortical shell
    ``shell`` mm thick (0.3-1 mm, thinner with age), endplates ``endplate`` mm thick (thicker
    with age: sclerosis), curved into the body by ``concavity`` mm at the centre; trabecular
    bone of volume fraction ``bvtv`` (set from the subject's true BMD and marrow) modulated by a
    texture of relative amplitude ``texture``. ``wedge``: anterior height loss of a compression
    fracture (fraction of the height, 0 = none); ``schmorl``: (u, v, radius, depth, which
    endplate 0 = upper / 1 = lower) herniations of the disc into an endplate."""

    name: str
    top: float
    height: float
    rx: float
    ry: float
    power: float
    dent: float
    shell: float
    waist: float
    endplate: float = 0.8
    concavity: float = 1.5
    bvtv: float = 0.1
    texture: float = 0.5
    endplate_density: float = 0.6
    wedge: float = 0.0
    schmorl: list = field(default_factory=list)

    def radii(self, z: float) -> tuple[float, float]:
        f = min(max((z - self.top) / self.height, 0.0), 1.0)
        squeeze = 1.0 - self.waist * math.sin(math.pi * f)  # narrowest at mid-height
        return self.rx * squeeze, self.ry * squeeze

    def boundary_distance(self, angle: float, z: float) -> float:
        """Distance from the centre to the outer rim along ``angle`` (spine frame, from +u)."""
        rx, ry = self.radii(z)
        c, s = abs(math.cos(angle)), abs(math.sin(angle))
        return 1.0 / ((c / rx) ** self.power + (s / ry) ** self.power) ** (1.0 / self.power)


@dataclass
class Spine:
    cx: float
    cy: float
    angle: float
    drift_u: float  # mm of lateral shift per mm of z (scoliosis)
    drift_v: float  # mm of AP shift per mm of z (lordosis)
    canal_w: float
    canal_h: float
    spinous_len: float
    transverse_len: float
    tilt: float = 0.0  # slope dz/dv of the endplates (sagittal tilt against the axial plane)

    def centre(self, z: float) -> tuple[float, float]:
        c, s = math.cos(self.angle), math.sin(self.angle)
        du, dv = self.drift_u * z, self.drift_v * z
        return self.cx + du * c - dv * s, self.cy + du * s + dv * c

    def to_image(self, z: float, u: float, v: float) -> tuple[float, float]:
        cx, cy = self.centre(z)
        c, s = math.cos(self.angle), math.sin(self.angle)
        return cx + u * c - v * s, cy + u * s + v * c


@dataclass
class Anatomy:
    bodies: list[VertebralBody]
    discs: list[tuple[str, float, float]]  # (name, top, bottom)
    spine: Spine
    hu: dict[str, float]
    body_outline: tuple[float, float, float, float, float]  # cx, cy, ax, ay, fat thickness
    aorta: tuple[float, float, float]  # dx from spine centre, gap to the body, radius
    plaques: list[tuple[float, float, float, float, float]]  # angle, width, HU, z0, z1
    ivc: tuple[float, float, float, float]
    kidneys: list[tuple[float, float, float, float, float, float]]  # x, y, ax, ay, angle, zc
    bowel: list[dict]
    ribs: list[tuple[int, float, float, float]]  # side, x offset, y offset, z end
    osteophytes: list[tuple[int, float, float, float, float, float]]
    islands: list[tuple[int, float, float, float, float]]  # body index, u, v, z, radius
    vacuum_discs: set[str]
    facts: dict = field(default_factory=dict)

    def region(self, z: float) -> tuple[str, int, float]:
        """('body', body index, fraction of its height) or ('disc', index of the body below or
        -1, fraction), for a plane at z."""
        for i, b in enumerate(self.bodies):
            if b.top <= z <= b.top + b.height:
                return "body", i, (z - b.top) / b.height
        for name, top, bottom in self.discs:
            if top <= z <= bottom:
                below = next((i for i, b in enumerate(self.bodies) if abs(b.top - bottom) < 1e-6),
                             -1)
                return "disc", below, (z - top) / max(bottom - top, 1e-6)
        return "disc", -1, 0.5

    @property
    def endplates(self) -> list[float]:
        return sorted({b.top for b in self.bodies} | {b.top + b.height for b in self.bodies})

    @property
    def span(self) -> tuple[float, float]:
        return self.discs[0][1], self.discs[-1][2]


def draw_anatomy(rng: np.random.Generator, person: Person, site: Site) -> Anatomy:
    """Sizes and positions of every structure for one subject (sex and age shape them)."""
    male = person.sex == "M"
    age_f = (person.age - 39) / 41.0  # 0 at 39, 1 at 80
    u = rng.uniform

    h1 = u(24.0, 28.0) * (1.0 if male else 0.95)
    h2 = h1 * u(1.0, 1.06)
    d01, d12, d23 = (u(6.0, 9.0), u(7.0, 11.0) - 1.5 * age_f, u(8.0, 12.0) - 1.5 * age_f)
    # Mid-body half-width and half-depth of L1 (L2 a few per cent larger). CT morphometry of
    # L1/L2 (Zhou et al., Eur Spine J 2000; Panjabi et al., Spine 1992) gives body depths in
    # the mid-30s mm with a spread of a few mm, women smaller; real vertebra masks, cut
    # obliquely by lordosis and smoothed by the resampling, measure deeper (36-42 mm here).
    rx1 = u(22.0, 25.5) if male else u(20.0, 23.5)
    ry1 = u(18.5, 22.0) if male else u(17.0, 20.5)
    power, dent, waist = u(2.1, 2.8), u(1.5, 4.0), u(0.03, 0.08)
    # Ritzel et al. 1997: the vertebral shell is 0.2-0.5 mm of compact bone, thicker
    # where it carries load, porous, thinning with age: as a partial-volume equivalent of
    # compact bone 0.2-0.6 mm at 39 y, up to 0.12 mm thinner at 80 y.
    shell = u(0.2, 0.6) - 0.12 * age_f * u(0.5, 1.0)
    l1 = VertebralBody("L1", 0.0, h1, rx1, ry1, power, dent, shell, waist)
    l2 = VertebralBody("L2", h1 + d12, h2, rx1 * u(1.02, 1.06), ry1 * u(1.0, 1.04),
                       power + u(-0.1, 0.1), dent, shell * u(0.97, 1.03), waist)
    end = l2.top + h2
    discs = [("T12/L1", -d01, 0.0), ("L1/L2", h1, l2.top), ("L2/L3", end, end + d23)]

    spine = Spine(cx=u(-8.0, 8.0), cy=u(-6.0, 6.0), angle=math.radians(u(-7.0, 7.0)),
                  drift_u=u(-0.06, 0.06), drift_v=u(-0.1, 0.1), canal_w=u(9.5, 12.0),
                  canal_h=u(7.0, 9.0), spinous_len=u(22.0, 32.0), transverse_len=u(12.0, 20.0))

    phase = rng.choice(list(CONTRAST_PHASES), p=[v[0] for v in CONTRAST_PHASES.values()])
    hu = {k: u(*r) for k, r in CONTRAST_PHASES[phase][1].items()}
    fatty = 12.0 * age_f * u(0.0, 1.0)  # fatty infiltration of muscle with age
    hu.update(fat=u(-110.0, -85.0), subcutaneous=u(-115.0, -90.0), skin=u(20.0, 50.0),
              muscle=u(45.0, 58.0) - fatty, disc_annulus=u(90.0, 120.0),
              disc_nucleus=u(60.0, 90.0), posterior_bone=u(1000.0, 1500.0),
              # the arch's cancellous bone is denser than the body's and ages with it
              marrow=min(max(person.true_bmd + u(30.0, 120.0), 90.0), 300.0),
              rib_bone=u(1200.0, 1500.0), sac=u(5.0, 25.0),
              bowel_wall=u(30.0, 60.0), table=u(120.0, 250.0),
              cortex=u(1200.0, 1700.0))  # compact bone of shell and endplates, before blur

    fat = (u(8.0, 30.0) if male else u(15.0, 40.0))
    back = (ry1 - dent) + 1.5 + 2 * spine.canal_h + 4.0 + spine.spinous_len + u(8.0, 16.0) + fat
    ax_body, ay_body = u(135.0, 175.0), u(105.0, 130.0)
    body_outline = (spine.cx * 0.3, spine.cy + back - ay_body, ax_body, ay_body, fat)

    aorta_r = u(9.0, 11.5) + 2.0 * age_f
    aorta = (u(6.0, 18.0), u(1.0, 5.0), aorta_r)
    plaques = []
    if rng.random() < min(0.1 + 0.8 * age_f, 0.85):  # calcification becomes common with age
        for _ in range(int(rng.integers(1, 5))):
            z0 = u(-10.0, end)
            plaques.append((u(0, 2 * math.pi), u(0.25, 0.9), u(500.0, 1400.0),
                            z0, z0 + u(6.0, 30.0)))
    ivc = (-u(20.0, 28.0), u(3.0, 9.0), u(10.0, 14.0), u(6.0, 10.0))
    kidneys = []
    for side in (-1, 1):
        zc = u(0.6 * h1, l2.top + 0.4 * h2) + (8.0 if side < 0 else 0.0)
        kidneys.append((side * u(60.0, 70.0), u(20.0, 32.0), u(19.0, 24.0), u(28.0, 36.0),
                        side * math.radians(u(25.0, 40.0)), zc))

    oral = rng.random() < 0.6
    bowel = []
    for _ in range(int(rng.integers(3, 8))):
        kind = rng.choice(["contrast", "mixed", "fluid", "gas"], p=[0.5, 0.2, 0.15, 0.15]
                          ) if oral else rng.choice(["fluid", "gas", "mixed_gas"])
        z0 = u(-15.0, end)
        bowel.append({"x": u(-70.0, 70.0), "y": u(-75.0, -ry1 - 12.0), "r": u(6.0, 15.0),
                      "kind": str(kind), "value": u(180.0, 450.0) if oral else u(5.0, 25.0),
                      "z0": z0, "z1": z0 + u(15.0, 60.0), "drift": (u(-0.4, 0.4), u(-0.3, 0.3))})

    ribs = []
    for side in (-1, 1):
        ribs.append((side, u(50.0, 60.0), u(35.0, 48.0), u(0.3 * h1, h1 + d12)))
        if rng.random() < 0.5:
            ribs.append((side, u(72.0, 82.0), u(15.0, 28.0), u(-5.0, 0.5 * h1)))

    osteophytes = []
    for bi, b in enumerate((l1, l2)):
        for endplate in (b.top, b.top + b.height):
            if rng.random() < 0.15 + 0.65 * age_f:
                for _ in range(int(rng.integers(1, 3))):
                    # anterior and lateral rims (angle from +u, anterior is -v)
                    angle = -math.pi / 2 + math.radians(u(-110.0, 110.0))
                    osteophytes.append((bi, endplate, angle, u(3.0, 7.0) * (0.6 + 0.6 * age_f),
                                        u(2.5, 4.0), u(3.0, 7.0)))
    islands = []
    for bi, b in enumerate((l1, l2)):
        if rng.random() < 0.2:
            r = u(2.5, 4.5)
            islands.append((bi, u(-0.5, 0.5) * (b.rx - b.shell - r),
                            u(-0.5, 0.4) * (b.ry - b.shell - r), u(b.top + r, b.top + b.height - r),
                            r))
    vacuum = {name for name, _, _ in discs if rng.random() < max(0.0, 0.45 * (age_f - 0.2))}
    # -- bone as tissue (drawn by jmedbench_phantom.vertebra) --------------------------------
    # Vertebral marrow turns from red to yellow with age (fat fraction ~30 % at 40 y, ~60 % at
    # 80 y): its HU falls. Trabecular bone tissue is compact bone's density; its volume fraction
    # is what makes the cancellous HU, set so that the cancellous mean lands near the subject's
    # true BMD (a little above it: the distribution is right-skewed). Imaging then blurs it.
    hu["bone_marrow"] = u(0.0, 40.0) - 75.0 * age_f * u(0.5, 1.2)
    hu["trabecular_tissue"] = u(1600.0, 1900.0)
    hu["vein"] = u(30.0, 60.0)
    bvtv = (person.true_bmd - 15.0 - hu["bone_marrow"]) / (hu["trabecular_tissue"]
                                                          - hu["bone_marrow"])
    spine.tilt = math.tan(math.radians(u(-10.0, 14.0)))
    fractures = []
    for b in (l1, l2):
        b.bvtv = float(min(max(bvtv, 0.01), 0.45))
        b.texture = u(0.6, 1.05)
        b.endplate = u(0.25, 0.5) + 0.4 * age_f * u(0.0, 1.0)  # sclerosis with age
        # The bony endplate is perforated by marrow contact channels and porous at its centre:
        # as partial-volume equivalent, its density is a fraction of the shell's compact bone.
        b.endplate_density = u(0.45, 0.7) + 0.15 * age_f * u(0.0, 1.0)
        b.concavity = u(0.8, 2.5)
        if rng.random() < (0.02 + 0.12 * age_f) * (1.0 if male else 1.5):
            b.wedge = u(0.12, 0.3)
            fractures.append(b.name)
        for which in (0, 1):
            if rng.random() < 0.1 + 0.15 * age_f:
                b.schmorl.append((u(-0.4, 0.4) * b.rx, u(-0.4, 0.3) * b.ry, u(2.5, 5.0),
                                  u(1.5, 4.0), which))
    facts = {"contrast_phase": str(phase), "oral_contrast": bool(oral),
             "aorta_calcified": bool(plaques), "osteophytes": len(osteophytes),
             "bone_islands": len(islands), "vacuum_discs": sorted(vacuum),
             "vertebral_width_mm": round(2 * rx1, 1), "cortical_shell_mm": round(shell, 2),
             "cortical_bone_hu": round(hu["cortex"], 1), "marrow_hu": round(hu["bone_marrow"], 1),
             "bone_volume_fraction": round(l1.bvtv, 4), "fractures": fractures,
             "schmorl_nodes": len(l1.schmorl) + len(l2.schmorl),
             "endplate_mm": round(l1.endplate, 2), "sleeve_mm": round(u(2.5, 7.0), 2)}
    return Anatomy([l1, l2], discs, spine, hu, body_outline, aorta, plaques, ivc, kidneys, bowel,
                   ribs, osteophytes, islands, vacuum, facts)
