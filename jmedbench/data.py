"""What datasets yield and what evaluation consumes: subjects as numpy stacks of axial slices.

Images are float32 in HU, label maps uint8 with 0 background, 1 cortical bone and 2 cancellous
bone (of the L1/L2 vertebral bodies). Splits are by subject, never by slice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from jmedbench.errors import UserError

STANDARD_SPLITS = ("train", "val", "test", "shift")
"""``shift`` is a test split from another site (hospital) than the training data."""


@dataclass
class Subject:
    """One person's L1/L2 slices.

    image: (S, H, W) float32 HU; label: (S, H, W) uint8; spacing: (z, y, x) in mm.
    true_bmd: the generating BMD in HU where it is known exactly (phantoms), else None.
    contiguous: the slices are adjacent in the scan, ``spacing[0]`` apart (a run of a CT's own
    slices); then surface metrics per subject are 3-D. False (the default, and the phantom's
    slices spread over L1/L2): each slice's surface is taken in 2-D and the points pooled.
    """

    subject_id: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    site: str = ""
    sex: str | None = None
    age: float | None = None
    true_bmd: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    contiguous: bool = False

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape != self.label.shape:
            raise ValueError(f"subject {self.subject_id}: image {self.image.shape} and label "
                             f"{self.label.shape} must be equal (S, H, W) stacks")

    @property
    def n_slices(self) -> int:
        return self.image.shape[0]


class Dataset:
    """Subjects by split. Subclasses fill :attr:`splits`; the engine reads nothing else."""

    name: str = "dataset"
    description: str = ""

    def __init__(self, splits: dict[str, list[Subject]], *, name: str | None = None,
                 info: dict[str, Any] | None = None) -> None:
        self.splits = splits
        if name:
            self.name = name
        self.info = info or {}
        seen: dict[str, str] = {}
        for split, subjects in splits.items():
            for s in subjects:
                if s.subject_id in seen and seen[s.subject_id] != split:
                    raise ValueError(f"subject {s.subject_id} is in splits {seen[s.subject_id]} "
                                     f"and {split}: splits must be by subject")
                seen[s.subject_id] = split

    def split(self, name: str) -> list[Subject]:
        if name not in self.splits:
            raise UserError(f"dataset '{self.name}' has no split '{name}' "
                            f"(it has: {', '.join(self.splits)})")
        return self.splits[name]

    def has_split(self, name: str) -> bool:
        return bool(self.splits.get(name))

    def summary(self) -> dict[str, Any]:
        rows = {}
        for split, subjects in self.splits.items():
            slices = sum(s.n_slices for s in subjects)
            rows[split] = {
                "subjects": len(subjects),
                "slices": slices,
                "sites": sorted({s.site for s in subjects}),
            }
        return {"name": self.name, "splits": rows, **self.info}


def stack_slices(subjects: list[Subject]) -> tuple[np.ndarray, np.ndarray]:
    """All slices of the subjects as (N, H, W) image and label arrays."""
    if not subjects:
        raise ValueError("no subjects to stack")
    images = np.concatenate([s.image for s in subjects]).astype(np.float32, copy=False)
    labels = np.concatenate([s.label for s in subjects]).astype(np.int64, copy=False)
    return images, labels


@dataclass
class Evaluation:
    """Subjects of one split with a model's predicted label maps (same shapes as their labels).

    ``images`` may differ from the subjects' own (a corrupted copy); density metrics read the
    HU values from ``images``.
    """

    subjects: list[Subject]
    predictions: list[np.ndarray]
    images: list[np.ndarray] | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[tuple[Subject, np.ndarray, np.ndarray]]:
        images = self.images or [s.image for s in self.subjects]
        return iter(zip(self.subjects, images, self.predictions))
