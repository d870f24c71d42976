"""Age regressions of BMD per sex and site, as the paper's Figure 7: D = -k * A + Z.

Two kinds of statistics per sex x site group:

- ``personal``: one point per person (their age, their BMD); ordinary least squares.
- ``group``: ages in 3-year bins centred on 40, 43, ..., 79 (39, 40, 41 -> 40: bin centre
  40 + 3 * floor((age - 38.5) / 3)); one point per bin at the bin centre, ordinary least squares
  over the bins (unweighted, one point per bin as in the figure). The bin's BMD is the mode of
  one Johnson-Su fitted to the pooled pixel values of everyone in the bin when pixel values are
  known (a dataset), else the mean of the persons' BMDs (a CSV of per-person BMDs).

k, Z with 95% confidence intervals (t distribution, n - 2 degrees of freedom), R^2, n. The
female/male decline ratio k_F / k_M per site and statistics, with a 95% interval by the delta
method (independent groups, normal approximation).
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np
from scipy import stats as sps

from jmedbench.density.bmd import CANCELLOUS_LABEL, bmd_from_values, masked_values
from jmedbench.errors import UserError

CSV_COLUMNS = ("subject", "sex", "site", "age", "bmd")
MIN_SUBJECTS = 3
BIN_WIDTH_YEARS = 3
FIRST_BIN_CENTRE = 40
SEX_ALIASES = {"m": "M", "male": "M", "man": "M", "f": "F", "female": "F", "woman": "F"}


@dataclass
class CohortSubject:
    """One person: BMD in any consistent unit; ``values`` their pixel HU values if known."""

    subject: str
    sex: str
    site: str
    age: float
    bmd: float
    values: np.ndarray | None = field(default=None, repr=False)


@dataclass
class AgeLine:
    """Least squares D = -k * A + Z over ``n`` points."""

    k: float
    Z: float
    r2: float
    n: int
    k_ci_low: float
    k_ci_high: float
    Z_ci_low: float
    Z_ci_high: float
    k_se: float
    Z_se: float


@dataclass
class GroupResult:
    sex: str
    site: str
    statistics: Literal["personal", "group"]
    k: float
    Z: float
    r2: float
    n: int
    n_subjects: int
    k_ci_low: float
    k_ci_high: float
    Z_ci_low: float
    Z_ci_high: float
    k_se: float
    Z_se: float
    female_male_ratio: float = float("nan")
    female_male_ratio_ci_low: float = float("nan")
    female_male_ratio_ci_high: float = float("nan")
    bin_bmd: str = ""
    note: str = ""
    ages: list[float] = field(default_factory=list)
    bmds: list[float] = field(default_factory=list)

    def to_dict(self, points: bool = True) -> dict[str, Any]:
        out = asdict(self)
        if not points:
            out.pop("ages")
            out.pop("bmds")
        return out


@dataclass
class CohortResult:
    groups: list[GroupResult]
    skipped: list[str] = field(default_factory=list)
    unit: str = ""

    def ratios(self) -> list[dict[str, Any]]:
        seen = {}
        for g in self.groups:
            if g.sex == "F" and math.isfinite(g.female_male_ratio):
                seen[(g.site, g.statistics)] = {
                    "site": g.site, "statistics": g.statistics, "ratio": g.female_male_ratio,
                    "ci_low": g.female_male_ratio_ci_low, "ci_high": g.female_male_ratio_ci_high}
        return list(seen.values())


# -- reading -----------------------------------------------------------------------------------

def normalise_sex(value: str) -> str:
    return SEX_ALIASES.get(value.strip().lower(), value.strip())


def read_cohort_csv(path: str | Path) -> list[CohortSubject]:
    """Rows of a CSV with the columns subject, sex, site, age, bmd (any order, header names
    case-insensitive, other columns ignored). Every problem names the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise UserError(f"{path}: empty file; expected a header {','.join(CSV_COLUMNS)}")
    header = [cell.strip().lower() for cell in rows[0]]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise UserError(f"{path} line 1: missing column(s) {', '.join(missing)} (header has "
                        f"{', '.join(h for h in header if h) or 'nothing'}; need "
                        f"{','.join(CSV_COLUMNS)})")
    index = {c: header.index(c) for c in CSV_COLUMNS}
    subjects: list[CohortSubject] = []
    first_line: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) < len(header):
            raise UserError(f"{path} line {line}: {len(row)} fields, the header has "
                            f"{len(header)}")
        cell = {c: row[i].strip() for c, i in index.items()}
        for column in ("subject", "sex", "site"):
            if not cell[column]:
                raise UserError(f"{path} line {line}: empty {column}")
        numbers = {}
        for column in ("age", "bmd"):
            try:
                numbers[column] = float(cell[column])
            except ValueError:
                raise UserError(f"{path} line {line}: {column} {cell[column]!r} is not a "
                                f"number") from None
            if not math.isfinite(numbers[column]):
                raise UserError(f"{path} line {line}: {column} {cell[column]!r} is not a "
                                f"finite number")
        if not 0 <= numbers["age"] <= 130:
            raise UserError(f"{path} line {line}: age {cell['age']} is not an age in years")
        if cell["subject"] in first_line:
            raise UserError(f"{path} line {line}: subject {cell['subject']!r} already on line "
                            f"{first_line[cell['subject']]} (one BMD per person)")
        first_line[cell["subject"]] = line
        subjects.append(CohortSubject(cell["subject"], normalise_sex(cell["sex"]), cell["site"],
                                      numbers["age"], numbers["bmd"]))
    if not subjects:
        raise UserError(f"{path}: no data rows under the header")
    return subjects


# -- statistics --------------------------------------------------------------------------------

def age_bin(age: float) -> int:
    """Centre of the 3-year bin of ``age``: 39, 40, 41 -> 40; 42, 43, 44 -> 43."""
    return FIRST_BIN_CENTRE + BIN_WIDTH_YEARS * math.floor(
        (age - (FIRST_BIN_CENTRE - BIN_WIDTH_YEARS / 2)) / BIN_WIDTH_YEARS)


def fit_age_line(ages: Iterable[float], bmds: Iterable[float]) -> AgeLine:
    """Ordinary least squares D = -k * A + Z, with t-based 95% intervals (NaN where n < 3, or
    where every age is the same)."""
    x = np.asarray(list(ages), dtype=np.float64)
    y = np.asarray(list(bmds), dtype=np.float64)
    n = x.size
    nan = float("nan")
    if n < 2 or np.ptp(x) == 0:
        return AgeLine(nan, nan, nan, n, nan, nan, nan, nan, nan, nan)
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    slope = float(((x - xm) * (y - ym)).sum() / sxx)
    intercept = float(ym - slope * xm)
    resid = y - (intercept + slope * x)
    sst = float(((y - ym) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / sst if sst > 0 else nan
    if n >= 3:
        s2 = float((resid ** 2).sum()) / (n - 2)
        se_slope = math.sqrt(s2 / sxx)
        se_intercept = math.sqrt(s2 * (1.0 / n + xm * xm / sxx))
        t = float(sps.t.ppf(0.975, n - 2))
    else:
        se_slope = se_intercept = t = nan
    k = -slope
    return AgeLine(k=k, Z=intercept, r2=r2, n=n,
                   k_ci_low=k - t * se_slope, k_ci_high=k + t * se_slope,
                   Z_ci_low=intercept - t * se_intercept, Z_ci_high=intercept + t * se_intercept,
                   k_se=se_slope, Z_se=se_intercept)


def _group_points(members: list[CohortSubject], bin_bmd: str, stored_offset: float
                  ) -> tuple[list[float], list[float]]:
    bins: dict[int, list[CohortSubject]] = {}
    for s in members:
        bins.setdefault(age_bin(s.age), []).append(s)
    ages, bmds = [], []
    for centre in sorted(bins):
        people = bins[centre]
        if bin_bmd == "pooled pixels":
            pooled = np.concatenate([p.values for p in people])
            bmd = bmd_from_values(pooled).bmd_hu + stored_offset
        else:
            bmd = float(np.mean([p.bmd for p in people]))
        ages.append(float(centre))
        bmds.append(bmd)
    return ages, bmds


def cohort_statistics(subjects: list[CohortSubject], *, min_subjects: int = MIN_SUBJECTS,
                      small_groups: Literal["error", "skip"] = "error",
                      stored_offset: float = 0.0, unit: str = "",
                      source: str = "cohort") -> CohortResult:
    """Personal and group statistics per sex x site (see the module docstring).

    ``stored_offset`` is added to pooled-pixel bin BMDs (computed in HU) so that they are in the
    unit of the persons' BMDs. A group with fewer than ``min_subjects`` persons raises a
    UserError (``small_groups="error"``) or is skipped and listed in ``skipped``.
    """
    groups: dict[tuple[str, str], list[CohortSubject]] = {}
    for s in subjects:
        groups.setdefault((s.sex, s.site), []).append(s)
    if not groups:
        raise UserError(f"{source}: no subjects")
    skipped: list[str] = []
    for key in sorted(groups):
        members = groups[key]
        if len(members) < min_subjects:
            message = (f"group sex={key[0]} site={key[1]} has {len(members)} subject(s) "
                       f"({', '.join(m.subject for m in members[:5])}); at least "
                       f"{min_subjects} are needed for a regression")
            if small_groups == "error":
                raise UserError(f"{source}: {message}")
            skipped.append(message)
            del groups[key]
    if not groups:
        raise UserError(f"{source}: no sex x site group has at least {min_subjects} subjects "
                        f"({'; '.join(skipped)})")
    results: list[GroupResult] = []
    for (sex, site), members in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        line = fit_age_line([m.age for m in members], [m.bmd for m in members])
        results.append(GroupResult(sex, site, "personal", n_subjects=len(members),
                                   ages=[m.age for m in members], bmds=[m.bmd for m in members],
                                   note="" if line.n >= 3 and math.isfinite(line.k)
                                   else "all ages equal: no slope",
                                   **_line_fields(line)))
        bin_bmd = ("pooled pixels" if all(m.values is not None for m in members)
                   else "mean of persons")
        ages, bmds = _group_points(members, bin_bmd, stored_offset)
        line = fit_age_line(ages, bmds)
        note = ""
        if len(ages) < 3:
            note = (f"only {len(ages)} age bin(s): "
                    + ("slope without a confidence interval" if len(ages) == 2 else "no slope"))
        results.append(GroupResult(sex, site, "group", n_subjects=len(members), ages=ages,
                                   bmds=bmds, bin_bmd=bin_bmd, note=note, **_line_fields(line)))
    _add_ratios(results)
    return CohortResult(results, skipped, unit)


def _line_fields(line: AgeLine) -> dict[str, Any]:
    return {k: v for k, v in asdict(line).items()}


def _add_ratios(results: list[GroupResult]) -> None:
    by_key = {(g.sex, g.site, g.statistics): g for g in results}
    for g in results:
        female = by_key.get(("F", g.site, g.statistics))
        male = by_key.get(("M", g.site, g.statistics))
        if female is None or male is None or not (male.k and math.isfinite(male.k)):
            continue
        ratio = female.k / male.k
        rel = math.sqrt((female.k_se / female.k) ** 2 + (male.k_se / male.k) ** 2) \
            if female.k and math.isfinite(female.k_se) and math.isfinite(male.k_se) \
            else float("nan")
        g.female_male_ratio = ratio
        g.female_male_ratio_ci_low = ratio - 1.96 * abs(ratio) * rel
        g.female_male_ratio_ci_high = ratio + 1.96 * abs(ratio) * rel


def cohort_from_masks(subjects: list, masks: list[np.ndarray], stored_offset: float = 0.0
                      ) -> tuple[list[CohortSubject], list[str]]:
    """Cohort members from dataset subjects (:class:`jmedbench.data.Subject`) and one
    cancellous mask stack per subject (label 2): BMD per person (+ ``stored_offset``) and their
    pixel values for group statistics. Returns the members and why others were left out (no
    sex or age, empty mask): every subject is accounted for."""
    members: list[CohortSubject] = []
    left_out: list[str] = []
    for subject, mask in zip(subjects, masks):
        if subject.sex is None or subject.age is None:
            left_out.append(f"{subject.subject_id}: no sex or age")
            continue
        try:
            values = masked_values(subject.image, mask, CANCELLOUS_LABEL,
                                   what=f"mask of {subject.subject_id}")
            bmd = bmd_from_values(values).bmd_hu
        except UserError as exc:
            left_out.append(f"{subject.subject_id}: {exc}")
            continue
        members.append(CohortSubject(subject.subject_id, normalise_sex(subject.sex),
                                     subject.site or "-", float(subject.age),
                                     bmd + stored_offset, values))
    return members, left_out
