"""Vertebra label maps -> per-slice cortical / cancellous labels of the L1 and L2 bodies.

numpy and scipy, and the shared cortical/cancellous rule of :mod:`jmedbench.cancellous`.
Mistakes in the input raise :class:`LabelMapError` (a ValueError); callers add the file name.
The core's own, so that the ``nifti:`` loader (``jmedbench_ctio``, which re-exports this
module as ``jmedbench_ctio.labels``) and ``jmedbench predict`` locate L1/L2 the same way.

Conventions (label value of each vertebra in a multi-label map):

- VerSe (Sekuboyina et al. 2021): 1-7 cervical, 8-19 thoracic, 20-25 lumbar (L1 = 20, L2 = 21),
  26 sacrum, 28 T13. No value above 28.
- TotalSegmentator v2 "total" task (Wasserthal et al. 2023): vertebrae_L2 = 30, vertebrae_L1 = 31
  (26 S1 ... 50 C1); the same map also carries organs with low values (20 colon, 21 urinary
  bladder), so 20/21 alone do not mean VerSe there.

Detection: any value 29-50 (never used by VerSe) means TotalSegmentator; otherwise values 20/21
mean VerSe; otherwise the map has neither convention's L1/L2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from jmedbench.cancellous import CANCELLOUS, CORTICAL  # noqa: F401 (re-exported)
from jmedbench.cancellous import DEFAULT_EROSION_MM  # noqa: F401 (re-exported)
from jmedbench.cancellous import split_body as shared_split_body


@dataclass(frozen=True)
class Convention:
    name: str
    l1: int
    l2: int
    citation: str

    @property
    def vertebrae(self) -> dict[str, int]:
        return {"L1": self.l1, "L2": self.l2}


VERSE = Convention("verse", 20, 21,
                   "Sekuboyina A. et al., VerSe: A Vertebrae labelling and segmentation benchmark "
                   "for multi-detector CT images, Medical Image Analysis 73:102166, 2021")
TOTALSEGMENTATOR = Convention("totalsegmentator", 31, 30,
                              "Wasserthal J. et al., TotalSegmentator: Robust Segmentation of 104 "
                              "Anatomic Structures in CT Images, Radiology: AI 5(5):e230024, 2023")
CONVENTIONS = {c.name: c for c in (VERSE, TOTALSEGMENTATOR)}
TOTALSEG_VERTEBRA_RANGE = (29, 50)  # L3 .. C1 in TotalSegmentator v2, unused by VerSe

# Defaults, explained in docs/datasets.md.
# Posterior elements (pedicles, laminae, processes) are 5-10 mm thick, a lumbar body 30-50 mm
# across: an opening of this radius keeps the body and cuts the thin bony arches off it.
DEFAULT_OPENING_MM = 5.0
# Body by anatomy (body_by_canal): a canal's cross-section is 150-300 mm^2 in the lumbar spine,
# a hole under this is a gap in a label map, not the canal.
MIN_CANAL_MM2 = 30.0
CANAL_MARGIN_MM = 1.5   # the concave posterior wall's corners lie this far behind its midline
PEDICLE_DETACH_MM = 2.0  # pedicles are 5-10 mm wide: a 2 mm disc detaches their stubs only


class LabelMapError(ValueError):
    """The label map cannot give L1/L2 bodies (wrong convention, no such labels...).

    ``in_body_mask`` is True when the body mask, not the vertebra map, is the likely culprit.
    """

    def __init__(self, message: str, in_body_mask: bool = False) -> None:
        super().__init__(message)
        self.in_body_mask = in_body_mask


def detect_convention(labels: np.ndarray) -> Convention:
    """The label convention of a multi-label vertebra map (see the module docstring)."""
    present = set(np.unique(labels).tolist())
    low, high = TOTALSEG_VERTEBRA_RANGE
    if any(low <= v <= high for v in present):
        return TOTALSEGMENTATOR
    if present & {VERSE.l1, VERSE.l2}:
        return VERSE
    shown = sorted(v for v in present if v != 0)
    raise LabelMapError(
        f"label map has neither VerSe L1/L2 (20/21) nor TotalSegmentator L1/L2 (31/30) labels "
        f"(found {shown[:20]}{' ...' if len(shown) > 20 else ''})")


def resolve_convention(labels: np.ndarray, convention: str = "auto") -> Convention:
    """``auto`` detects, or ``verse`` / ``totalsegmentator``; either way the map must hold the
    chosen convention's L1 or L2 (a TotalSegmentator map cropped above L1 has neither)."""
    if convention == "auto":
        chosen = detect_convention(labels)
    elif convention in CONVENTIONS:
        chosen = CONVENTIONS[convention]
    else:
        raise LabelMapError(f"unknown label convention '{convention}' (use auto, "
                            f"{', '.join(CONVENTIONS)})")
    if not np.isin([chosen.l1, chosen.l2], labels).any():
        raise LabelMapError(f"no L1 ({chosen.l1}) or L2 ({chosen.l2}) label of convention "
                            f"'{chosen.name}' in the label map")
    return chosen


def body_by_opening(vertebra: np.ndarray, pixel_mm: tuple[float, float],
                    radius_mm: float = DEFAULT_OPENING_MM) -> np.ndarray:
    """Approximate vertebral body of a whole-vertebra mask, (S, H, W) -> (S, H, W).

    For label maps without a body mask (VerSe). Per axial slice, an opening with a disc of
    ``radius_mm`` removes the thin posterior elements and the largest piece left is the body
    candidate, grown back inside the mask. Below and above the body the slices may hold only
    posterior elements (the spinous process reaches lower than the body): a candidate is kept
    only if at least half of it lies on the footprint of the largest candidate of the vertebra.
    Use a body mask when there is one; docs/datasets.md gives its measured agreement.
    """
    ry, rx = (max(1, int(round(radius_mm / s))) for s in pixel_mm)
    yy, xx = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    disc = (yy * pixel_mm[0]) ** 2 + (xx * pixel_mm[1]) ** 2 <= radius_mm ** 2
    candidates = np.zeros(vertebra.shape, bool)
    for s in np.flatnonzero(vertebra.any(axis=(1, 2))):
        opened = ndimage.binary_opening(vertebra[s], structure=disc)
        pieces, n = ndimage.label(opened)
        if n == 0:
            continue  # thinner than the disc everywhere: no body on this slice
        sizes = ndimage.sum_labels(opened, pieces, index=np.arange(1, n + 1))
        largest = pieces == (int(np.argmax(sizes)) + 1)
        # Opening shaves corners; grow back within the mask by the same radius.
        candidates[s] = ndimage.binary_dilation(largest, structure=disc) & vertebra[s]
    areas = candidates.sum(axis=(1, 2))
    if not areas.any():
        return candidates
    footprint = candidates[int(np.argmax(areas))]
    for s in np.flatnonzero(areas):
        if (candidates[s] & footprint).sum() < 0.5 * areas[s]:
            candidates[s] = False
    return candidates


def _disc(radius_mm: float, pixel_mm: tuple[float, float]) -> np.ndarray:
    ry, rx = (max(1, int(round(radius_mm / s))) for s in pixel_mm)
    yy, xx = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    return (yy * pixel_mm[0]) ** 2 + (xx * pixel_mm[1]) ** 2 <= radius_mm ** 2


def canal_front_row(vertebra: np.ndarray, pixel_mm: tuple[float, float]) -> float | None:
    """Row (canonical layout: rows run anterior to posterior) of the spinal canal's anterior
    wall at its midline, or None when the vertebra does not enclose a canal.

    The canal is the hole of the vertebra's footprint (its projection along z): the arch
    closes around it on some slices, the body bounds it in front. Its front at the midline
    (within 2 mm of the canal's centre column) is the body's posterior wall."""
    footprint = vertebra.any(axis=0)
    holes = ndimage.binary_fill_holes(footprint) & ~footprint
    pieces, n = ndimage.label(holes)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(holes, pieces, index=np.arange(1, n + 1))
    largest = int(np.argmax(sizes))
    if sizes[largest] * pixel_mm[0] * pixel_mm[1] < MIN_CANAL_MM2:
        return None
    rows, cols = np.nonzero(pieces == largest + 1)
    midline = np.abs(cols - cols.mean()) <= max(1.0, 2.0 / pixel_mm[1])
    return float(rows[midline].min())


def body_by_canal(vertebra: np.ndarray, pixel_mm: tuple[float, float],
                  margin_mm: float = CANAL_MARGIN_MM, detach_mm: float = PEDICLE_DETACH_MM
                  ) -> np.ndarray | None:
    """Vertebral body of a whole-vertebra mask by anatomy, (S, H, W) -> (S, H, W), or None
    when no spinal canal is found (then use :func:`body_by_opening`).

    The body lies in front of the spinal canal: the part of each axial slice anterior to the
    canal's front wall (plus ``margin_mm``: the posterior wall is concave, its corners reach a
    little behind the midline) is the body candidate. The pedicles join the body at its
    posterolateral corners; an opening with a disc of ``detach_mm`` cuts their stubs off, the
    largest piece is kept and grown back inside the candidate. Slices whose candidate is empty
    (the spinous process below the body) hold no body.
    """
    front = canal_front_row(vertebra, pixel_mm)
    if front is None:
        return None
    cut = front + margin_mm / pixel_mm[0]
    anterior = (np.arange(vertebra.shape[1]) < cut)[:, None]
    disc = _disc(detach_mm, pixel_mm)
    body = np.zeros(vertebra.shape, bool)
    for s in np.flatnonzero(vertebra.any(axis=(1, 2))):
        part = vertebra[s] & anterior
        opened = ndimage.binary_opening(part, structure=disc)
        pieces, n = ndimage.label(opened)
        if n == 0:
            continue
        sizes = ndimage.sum_labels(opened, pieces, index=np.arange(1, n + 1))
        keep = pieces == int(np.argmax(sizes)) + 1
        body[s] = ndimage.binary_dilation(keep, structure=disc) & part
    return body


def split_body(body: np.ndarray, pixel_mm: tuple[float, float],
               erosion_mm: float = DEFAULT_EROSION_MM) -> np.ndarray:
    """Cortical (1) and cancellous (2) labels of one vertebral body on one axial slice: the
    project's one rule, :func:`jmedbench.cancellous.split_body` (the phantom uses it too)."""
    if not erosion_mm > 0:
        raise LabelMapError(f"erosion_mm must be > 0, got {erosion_mm}")
    return shared_split_body(body, pixel_mm, erosion_mm)


def split_bodies(bodies: dict[str, np.ndarray], pixel_mm: tuple[float, float],
                 erosion_mm: float = DEFAULT_EROSION_MM) -> np.ndarray:
    """(S, H, W) labels 0/1/2 from per-vertebra (S, H, W) body masks, split slice by slice.

    Each vertebra is split on its own, so where L1 and L2 meet on one slice the contact is
    cortical (an end plate), not the inside of one merged body.
    """
    shape = next(iter(bodies.values())).shape
    label = np.zeros(shape, np.uint8)
    for body in bodies.values():
        for s in np.flatnonzero(body.any(axis=(1, 2))):
            label[s] = np.maximum(label[s], split_body(body[s], pixel_mm, erosion_mm))
    return label


@dataclass
class L1L2Bodies:
    """The L1 and L2 vertebral bodies found in a canonical (S, H, W) label map."""

    bodies: dict[str, np.ndarray]  # "L1"/"L2" -> (S, H, W) bool
    slices: np.ndarray             # indices of the axial slices through either body
    vertebrae_per_slice: list[tuple[str, ...]]  # ("L1",), ("L2",) or ("L1", "L2")
    convention: Convention
    body_source: str               # "mask", "canal", "opening" (or "canal+opening")


def l1l2_bodies(vertebrae: np.ndarray, spacing: tuple[float, float, float], *,
                body_mask: np.ndarray | None = None, convention: str = "auto",
                opening_mm: float = DEFAULT_OPENING_MM) -> L1L2Bodies:
    """The L1 and L2 vertebral bodies of a multi-label vertebra map.

    ``vertebrae``: (S, H, W) multi-label map; ``body_mask``: optional (S, H, W) map whose value 1
    marks vertebral bodies (TotalSegmentator's vertebrae_body task; its value 2, intervertebral
    discs, is ignored). Without it the body is cut from each vertebra by anatomy
    (:func:`body_by_canal`: what lies in front of the spinal canal), or, where no canal is
    found, by :func:`body_by_opening`.
    Slices holding only posterior elements of L1/L2 are not kept.
    """
    chosen = resolve_convention(vertebrae, convention)
    pixel_mm = (float(spacing[1]), float(spacing[2]))
    mask = None if body_mask is None else (body_mask == 1)
    bodies: dict[str, np.ndarray] = {}
    sources: set[str] = set()
    for name, value in chosen.vertebrae.items():
        vertebra = vertebrae == value
        if not vertebra.any():
            continue
        if mask is not None:
            bodies[name] = vertebra & mask
            continue
        by_anatomy = body_by_canal(vertebra, pixel_mm)
        if by_anatomy is not None and by_anatomy.any():
            bodies[name] = by_anatomy
            sources.add("canal")
        else:
            bodies[name] = body_by_opening(vertebra, pixel_mm, opening_mm)
            sources.add("opening")
    present = {name: np.flatnonzero(b.any(axis=(1, 2))) for name, b in bodies.items()}
    slices = np.unique(np.concatenate(list(present.values()))) if present else np.array([], int)
    if slices.size == 0:
        raise LabelMapError("no voxel of the L1/L2 labels is marked 1 (vertebral body) in the "
                            "body mask" if mask is not None else
                            "L1/L2 labels hold no vertebral body (too thin everywhere)",
                            in_body_mask=mask is not None)
    per_slice = [tuple(n for n in sorted(present) if s in present[n]) for s in slices]
    return L1L2Bodies(bodies, slices.astype(np.int64), per_slice, chosen,
                      "mask" if mask is not None else "+".join(sorted(sources)))


def l1l2_labels(vertebrae: np.ndarray, spacing: tuple[float, float, float], *,
                body_mask: np.ndarray | None = None, convention: str = "auto",
                erosion_mm: float = DEFAULT_EROSION_MM,
                opening_mm: float = DEFAULT_OPENING_MM) -> tuple[np.ndarray, L1L2Bodies]:
    """(S, H, W) cortical/cancellous labels of L1/L2 at the map's own resolution, and the
    bodies they came from (``.slices`` are the axial slices through them)."""
    found = l1l2_bodies(vertebrae, spacing, body_mask=body_mask, convention=convention,
                        opening_mm=opening_mm)
    label = split_bodies(found.bodies, (float(spacing[1]), float(spacing[2])), erosion_mm)
    return label, found
