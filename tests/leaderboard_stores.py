"""Synthetic results stores with per-subject rows (the contract the engine writes), for the
ranking and leaderboard tests and their demo figures.

A cohort of ``n`` test subjects at site N and ``n`` cross-site subjects at site S, half women,
ages 40-79, true BMD from a linear age law per sex x site; the reference mask's BMD is the
true BMD plus a fixed per-subject deviation. An entry's quality is set by its functions of the
subject index: Dice, HD95 and the BMD error.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

LAW = {("F", "N"): (3.7, 337.0), ("M", "N"): (2.6, 291.0),
       ("F", "S"): (3.7, 343.0), ("M", "S"): (1.9, 254.0)}  # (k, Z): D = -k * age + Z, HU
FOV_DIAGONAL_MM = 90.5


def cohort(n: int = 20) -> list[dict[str, Any]]:
    """Subjects of both splits: split, subject, sex, age, site, bmd_true, bmd_reference."""
    rng = np.random.default_rng(12345)
    people = []
    for split, site in (("test", "N"), ("shift", "S")):
        for i in range(n):
            sex = "F" if i % 2 == 0 else "M"
            age = 40 + (i * 39) // max(n - 1, 1)
            k, z = LAW[(sex, site)]
            true = -k * age + z + rng.normal(0, 5)
            people.append({"split": split, "subject": f"{site}-{i:03d}", "index": i,
                           "sex": sex, "age": float(age), "site": site,
                           "bmd_true": float(true),
                           "bmd_reference": float(true + rng.normal(0, 2))})
    return people


def subject_values(person: dict[str, Any], dice: float, hd95: float,
                   bmd_error: float | None) -> dict[str, Any]:
    """One subject row's values; ``bmd_error`` None: the BMD failed (empty cancellous mask)."""
    failed = bmd_error is None
    return {
        "dice": [0.99, dice, dice], "iou": [0.98, dice / (2 - dice), dice / (2 - dice)],
        "nsd": [None, dice, dice], "hd95": [None, hd95, hd95], "assd": [None, hd95 / 3, hd95 / 3],
        "nsd_tolerance_mm": 1.0,
        "bmd_reference": person["bmd_reference"],
        "bmd_predicted": None if failed else person["bmd_reference"] + bmd_error,
        "bmd_error": bmd_error, "bmd_failed": failed,
        "bmd_failure": "empty predicted cancellous mask" if failed else None,
        "bmd_mean_error": None if failed else 2.0 * bmd_error,
        "bmd_median_error": None if failed else 1.5 * bmd_error,
        "bmd_true": person["bmd_true"], "sex": person["sex"], "age": person["age"],
        "site": person["site"]}


def add_entry_run(store, model: str, strategy: str, seed: int, people: list[dict[str, Any]],
                  dice: Callable[[dict], float], hd95: Callable[[dict], float] | None = None,
                  bmd_error: Callable[[dict], float | None] | None = None,
                  details: dict[str, Any] | None = None, with_subjects: bool = True) -> str:
    """A completed run whose subject rows follow the given functions of each person."""
    hd95 = hd95 or (lambda p: 10.0 * (1.0 - dice(p)) + 1.0)
    bmd_error = bmd_error or (lambda p: 5.0 * (1.0 - dice(p)))
    run_id = store.begin_run({"model": model, "strategy": strategy, "dataset": "phantom",
                              "profile": "leaderboard", "seed": seed, "backend": "torch"},
                             {"versions": {"torch": "2"}, "cpu": "test cpu", "cpu_count": 2,
                              "git_commit": "abc"})
    rows = [(p["split"], p["subject"], subject_values(p, dice(p), hd95(p), bmd_error(p)))
            for p in people] if with_subjects else []
    test = [v for split, _, v in rows if split == "test"]
    metrics = {"dice": float(np.mean([dice(p) for p in people if p["split"] == "test"])),
               "bmd_mae": float(np.mean([abs(v["bmd_error"]) for v in test
                                         if v["bmd_error"] is not None] or [math.nan]))}
    store.finish_run(run_id, metrics=metrics, timings={"train": 1.0},
                     details={"params": 1000, "gflops": 0.1, **(details or {})},
                     image_rows=[], subject_rows=rows)
    return run_id


def demo_store(store, seeds=(0, 1, 2), n: int = 20) -> None:
    """Five entries over three seeds: two clearly ordered UNet entries, two indistinguishable
    ones, and one that predicts nothing."""
    people = cohort(n)
    for seed in seeds:
        jitter = 0.002 * seed
        add_entry_run(store, "unet", "sas", seed, people,
                      lambda p: 0.93 + jitter + 0.01 * math.sin(p["index"]),
                      bmd_error=lambda p: 0.8 * math.sin(3 * p["index"] + seed))
        add_entry_run(store, "unet", "baseline", seed, people,
                      lambda p: 0.89 + jitter + 0.01 * math.sin(p["index"]),
                      bmd_error=lambda p: 2.0 + 1.5 * math.sin(3 * p["index"] + seed))
        add_entry_run(store, "segnet", "baseline", seed, people,
                      lambda p: 0.80 + jitter + 0.05 * math.sin(2 * p["index"] + seed),
                      bmd_error=lambda p: 6.0 * math.sin(p["index"] + seed)
                      if p["index"] % 7 else None)
        add_entry_run(store, "segnet", "sas", seed, people,
                      lambda p: 0.80 + jitter + 0.05 * math.sin(2 * p["index"] + seed + 0.3),
                      bmd_error=lambda p: 6.0 * math.sin(p["index"] + seed + 0.3))
        add_entry_run(store, "empty", "baseline", seed, people, lambda p: 0.0,
                      hd95=lambda p: FOV_DIAGONAL_MM, bmd_error=lambda p: None)
