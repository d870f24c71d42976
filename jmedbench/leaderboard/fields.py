"""The ranking and clinical columns of the leaderboard tables: their raw values (CSV, sorting)
and their text (mean ± SD over seeds [95 % bootstrap CI over subjects], rank [95 % rank
interval]). An entry without subject rows (a run stored before they existed) shows n/a."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jmedbench.leaderboard.clinical import ESTIMATORS, L1_THRESHOLDS_HU
from jmedbench.leaderboard.subject_scores import BMD_SCORE, Score

NA = "n/a"


@dataclass(frozen=True)
class Field:
    """A column: ``key`` its sort/CSV key, ``compact`` whether the Markdown table shows it (the
    page and the CSV show every field)."""

    key: str
    title: str
    digits: int
    compact: bool = False


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return NA
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _mean_sd_text(numbers: dict[str, Any] | None, digits: int, percent: bool = False) -> str:
    if not numbers or numbers.get("mean") is None:
        return NA
    scale = 100.0 if percent else 1.0
    text = f"{numbers['mean'] * scale:.{digits}f}"
    if numbers.get("sd") is not None:
        text += f" ± {numbers['sd'] * scale:.{digits}f}"
    return text


CLINICAL_FIELDS = (
    ("failure_rate", "BMD failed %", 1, True, True),
    ("k_error", "k error HU/y", 3, True, False),
    ("Z_error", "Z error HU", 1, False, False),
    ("ratio_error", "F/M ratio error", 3, True, False),
    ("k_error_true", "k error vs truth", 3, False, False),
    ("ratio_error_true", "F/M ratio error vs truth", 3, False, False),
    ("bias", "Bias HU", 2, False, False),
    ("loa_low", "LoA low HU", 1, False, False),
    ("loa_high", "LoA high HU", 1, False, False),
    ("ccc", "Lin CCC", 3, True, False),
    *((f"misclassified_{t:g}", f"Miscl. {t:g} HU %", 1, t == 110.0, True)
      for t in L1_THRESHOLDS_HU),
    *((f"abs_error_{name}", f"|error| {name} HU", 2, False, False) for name, _ in ESTIMATORS),
)
"""(key in ``entry["clinical"]``, title, digits, in the Markdown table, shown in percent)."""


def fields(scores: list[Score]) -> list[Field]:
    """Every ranking and clinical column; ``scores[0]`` is the headline."""
    out = []
    for i, score in enumerate(scores):
        lead = i == 0 or score.key == BMD_SCORE
        out += [Field(f"{score.key}_subjects", f"{score.title} (subjects)", score.digits, lead),
                Field(f"{score.key}_rank", f"Rank {score.title}", 0, lead),
                Field(f"{score.key}_better_than", f"Sig. better {score.title}", 0, i == 0)]
    out += [Field(key, title, digits, compact) for key, title, digits, compact, _ in
            CLINICAL_FIELDS]
    return out


def field_cells(entry: dict[str, Any], scores: list[Score]) -> dict[str, tuple[Any, str]]:
    """key -> (value to sort by, text) for every field of :func:`fields`."""
    ranking = entry.get("ranking") or {}
    clinical = entry.get("clinical") or {}
    cells: dict[str, tuple[Any, str]] = {}
    for score in scores:
        r = ranking.get(score.key)
        if r is None:
            cells[f"{score.key}_subjects"] = (None, NA)
            cells[f"{score.key}_rank"] = (None, NA)
            cells[f"{score.key}_better_than"] = (None, NA)
            continue
        text = _mean_sd_text(r, score.digits)
        if r.get("ci95"):
            text += f" [{r['ci95'][0]:.{score.digits}f}, {r['ci95'][1]:.{score.digits}f}]"
        cells[f"{score.key}_subjects"] = (r["mean"], text)
        low, high = r["rank_ci95"]
        cells[f"{score.key}_rank"] = (r["rank"], f"{r['rank']} [{low}–{high}]")
        cells[f"{score.key}_better_than"] = (r["better_than"], str(r["better_than"]))
    for key, _, digits, _, percent in CLINICAL_FIELDS:
        numbers = clinical.get(key)
        cells[key] = (numbers.get("mean") if numbers else None,
                      _mean_sd_text(numbers, digits, percent))
    return cells


def flat_values(entry: dict[str, Any], scores: list[Score]) -> dict[str, Any]:
    """Raw numbers for the CSV: per score mean, SD, CI, rank, rank interval, significance;
    every clinical number with its SD over seeds. None where not available."""
    ranking = entry.get("ranking") or {}
    clinical = entry.get("clinical") or {}
    out: dict[str, Any] = {}
    for score in scores:
        r = ranking.get(score.key) or {}
        ci = r.get("ci95") or [None, None]
        rank_ci = r.get("rank_ci95") or [None, None]
        out.update({f"{score.key}_subjects_mean": r.get("mean"),
                    f"{score.key}_subjects_sd": r.get("sd"),
                    f"{score.key}_ci95_low": ci[0], f"{score.key}_ci95_high": ci[1],
                    f"{score.key}_rank": r.get("rank"),
                    f"{score.key}_rank_low": rank_ci[0], f"{score.key}_rank_high": rank_ci[1],
                    f"{score.key}_better_than": r.get("better_than"),
                    f"{score.key}_significance_rank": r.get("significance_rank")})
    for key, *_ in CLINICAL_FIELDS:
        numbers = clinical.get(key) or {}
        out[key] = numbers.get("mean")
        out[f"{key}_sd"] = numbers.get("sd")
    return out
