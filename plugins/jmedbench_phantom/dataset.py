"""A first phantom: body, fat, a vertebral body (cortical shell, cancellous core with
Johnson-Su HU of known mode) and unlabelled posterior elements. Sizes set by options."""

from __future__ import annotations

import numpy as np

from jmedbench.data import Dataset, Subject
from jmedbench.density.johnsonsu import johnson_su_mode

# The paper's group-statistics law D = -k * age + Z in stored values (HU + 1024).
AGE_LAW = {("M", "N"): (2.62, 1314.88), ("M", "S"): (1.94, 1277.66),
           ("F", "N"): (3.66, 1361.28), ("F", "S"): (3.69, 1367.20)}
SITES = {"N": {"slice_mm": 3.0, "noise": 18.0}, "S": {"slice_mm": 5.0, "noise": 25.0}}


def true_bmd_hu(sex: str, site: str, age: float) -> float:
    k, z = AGE_LAW[(sex, site)]
    return -k * age + z - 1024.0


def make_subject(subject_id: str, sex: str, age: float, site: str, n_slices: int, size: int,
                 rng: np.random.Generator) -> Subject:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    bmd = true_bmd_hu(sex, site, age)
    a, b, scale = rng.uniform(-1.5, -0.5), rng.uniform(1.8, 3.0), rng.uniform(60, 90)
    loc = bmd - scale * (johnson_su_mode(a, b, 0.0, 1.0))
    images = np.empty((n_slices, size, size), np.float32)
    labels = np.zeros((n_slices, size, size), np.uint8)
    cx, cy = 0.5 + rng.uniform(-0.04, 0.04), 0.55 + rng.uniform(-0.03, 0.03)
    scale_site = 1.12 if site == "S" else 1.0
    rx, ry = rng.uniform(0.13, 0.17) * scale_site, rng.uniform(0.10, 0.13) * scale_site
    for s in range(n_slices):
        taper = 1.0 - 0.25 * abs(s - (n_slices - 1) / 2) / max(n_slices, 1)
        body = ((xx - 0.5) / 0.45) ** 2 + ((yy - 0.5) / 0.38) ** 2 < 1
        fat_ring = body & ~(((xx - 0.5) / 0.40) ** 2 + ((yy - 0.5) / 0.33) ** 2 < 1)
        img = np.full((size, size), -1000.0, np.float32)
        img[body] = 45.0
        img[fat_ring] = -100.0
        r = ((xx - cx) / (rx * taper)) ** 2 + ((yy - cy) / (ry * taper)) ** 2
        vertebra = r < 1
        shell = 1 - (2.5 / size) / min(rx, ry)
        cancellous = r < shell ** 2
        cortical = vertebra & ~cancellous
        posterior = (((xx - cx) / (rx * 0.35)) ** 2 + ((yy - cy - ry - 0.06) / 0.05) ** 2) < 1
        img[posterior & ~vertebra] = 1300.0
        img[cortical] = rng.normal(1470.0, 25.0, cortical.sum())
        draws = loc + scale * np.sinh((rng.standard_normal(cancellous.sum()) - a) / b)
        img[cancellous] = draws
        labels[s][cortical] = 1
        labels[s][cancellous] = 2
        images[s] = img + rng.normal(0, SITES[site]["noise"], img.shape).astype(np.float32) * (
            ~cancellous)
    spacing = (SITES[site]["slice_mm"], 200.0 / size, 200.0 / size)
    return Subject(subject_id, images, labels, spacing, site=site, sex=sex, age=float(age),
                   true_bmd=bmd, meta={"johnson_su": {"a": a, "b": b, "loc": loc,
                                                      "scale": scale}})


def make_phantom_dataset(seed: int = 0, image_size: int = 128, train_subjects: int = 12,
                         val_subjects: int = 2, test_subjects: int = 6, shift_subjects: int = 6,
                         slices_per_subject: int = 8) -> Dataset:
    """Subjects by split; train/val/test from site N, shift from site S (cross-site test)."""
    rng = np.random.default_rng([seed, 101])
    splits: dict[str, list[Subject]] = {}
    counter = 0
    for split, n, site in (("train", train_subjects, "N"), ("val", val_subjects, "N"),
                           ("test", test_subjects, "N"), ("shift", shift_subjects, "S")):
        subjects = []
        for _ in range(n):
            sex = "F" if rng.random() < 0.5 else "M"
            age = int(rng.integers(39, 81))
            subjects.append(make_subject(f"{site}{counter:04d}", sex, age, site,
                                         slices_per_subject, image_size, rng))
            counter += 1
        splits[split] = subjects
    return Dataset(splits, name="phantom", info={"seed": seed, "image_size": image_size})
