"""Rankings with their uncertainty, over the test subjects, as challengeR ranks challenge
entries (Wiesenfarth et al., Sci Rep 11, 2021).

Entries are compared within one dataset x profile (the same test subjects). Per score
(:data:`~jmedbench.leaderboard.subject_scores.SCORES`) and entry:

- the subject value is the mean over the entry's seeds of that subject's score; the entry's
  value is the mean over seeds of the per-seed subject means, its spread the SD over seeds;
- only subjects that every compared entry scored enter the comparison (all of them, as a rule);
- **BMD failures**: a subject whose predicted mask gave no BMD takes, in that seed, the
  largest measured |error| of the comparison (every entry, seed and subject) plus 1 HU: worse
  than any measured error, so one failure costs more than any measurement and an entry that
  fails on every subject ranks last;
- a 95 % bootstrap interval of the mean over subjects (1,000 resamples, fixed seed, percentile
  method) and the bootstrap rank distribution: every resample draws the same subjects for all
  entries (:func:`jmedbench.stats.paired_bootstrap_means`), entries are ranked on it (rank 1 is
  best, ties share the better rank), the 95 % rank interval is the 2.5-97.5 percentile of the
  entry's ranks; Kendall's tau between each bootstrap ranking and the full ranking (its mean
  and median) measures how stable the ranking is;
- test-then-rank: one-sided paired Wilcoxon signed-rank tests for every ordered pair of entries
  on the same subjects, Holm-adjusted over all pairs of the score; an entry is significantly
  better than another at adjusted p < 0.05. ``better_than`` counts them; the significance
  rank orders entries by that count (challengeR's significance ranking).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from scipy.stats import rankdata

from jmedbench.leaderboard.aggregate import entry_id
from jmedbench.leaderboard.subject_scores import BMD_SCORE, RANKED_SPLIT, Score, bmd_failed
from jmedbench.stats import (holm, kendall_tau, mean_sd, paired_bootstrap_means,
                             paired_wilcoxon)

N_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
ALPHA = 0.05
FAILURE_MARGIN_HU = 1.0


def entry_label(entry: dict[str, Any]) -> str:
    """A short label for figures: model/strategy (with the backend when not torch)."""
    label = f"{entry['model']}/{entry['strategy']}"
    return label if entry["backend"] == "torch" else f"{label} ({entry['backend']})"


def _seed_values(rows: list[dict[str, Any]], score: Score) -> dict[Any, dict[str, Any]]:
    """seed -> subject -> value (a float, or "failed" for a failed BMD)."""
    out: dict[Any, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        if row["split"] != RANKED_SPLIT:
            continue
        if score.key == BMD_SCORE and bmd_failed(row):
            out[row["seed"]][row["subject"]] = "failed"
        elif row["scores"][score.key] is not None:
            out[row["seed"]][row["subject"]] = row["scores"][score.key]
    return out


def rank_score(entries: list[dict[str, Any]], rows: dict[str, list[dict[str, Any]]],
               score: Score, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED
               ) -> dict[str, Any] | None:
    """The ranking of ``entries`` (one dataset x profile) on one score: per entry (by
    :func:`entry_id`) its numbers, and the comparison's own (subjects, Kendall's tau, the
    Holm-adjusted p-values and significance matrix in full-rank order). None when fewer than
    one entry has the score on a shared subject."""
    per_entry = {entry_id(e): _seed_values(rows.get(entry_id(e), []), score) for e in entries}
    per_entry = {k: v for k, v in per_entry.items() if any(v.values())}
    if not per_entry:
        return None
    failure_value = None
    if score.key == BMD_SCORE:
        measured = [v for seeds in per_entry.values() for subjects in seeds.values()
                    for v in subjects.values() if v != "failed"]
        failure_value = (max(measured) if measured else 0.0) + FAILURE_MARGIN_HU
    ids = sorted(per_entry)
    subject_sets = [set().union(*(s.keys() for s in per_entry[i].values())) for i in ids]
    subjects = sorted(set.intersection(*subject_sets))
    if not subjects:
        return None

    def value(v: Any) -> float:
        return failure_value if v == "failed" else float(v)

    columns = np.empty((len(subjects), len(ids)))
    seed_means: dict[str, list[float]] = {}
    for j, i in enumerate(ids):
        seeds = per_entry[i]
        for n, subject in enumerate(subjects):
            columns[n, j] = np.mean([value(s[subject]) for s in seeds.values() if subject in s])
        seed_means[i] = [float(np.mean([value(s[x]) for x in subjects if x in s]))
                         for s in seeds.values() if any(x in s for x in subjects)]
    sign = 1.0 if score.higher_is_better else -1.0
    better = sign * columns  # higher is better from here on
    full_rank = rankdata(-better.mean(axis=0), method="min")
    k, n = len(ids), len(subjects)
    if n >= 2:
        low, high, distribution = paired_bootstrap_means(columns, n_resamples, seed)
        boot_ranks = rankdata(-sign * distribution, axis=0, method="min")  # (entries, B)
    else:  # one subject: nothing to resample
        low = high = None
        boot_ranks = np.repeat(full_rank[:, None], n_resamples, axis=1)
    taus = [kendall_tau(full_rank, boot_ranks[:, b]) for b in range(boot_ranks.shape[1])] \
        if k >= 2 else []
    taus = [t for t in taus if np.isfinite(t)]
    # one-sided tests for every ordered pair (i better than j), Holm over all of them
    pairs = [(a, b) for a in range(k) for b in range(k) if a != b]
    p_adjusted = np.full((k, k), np.nan)
    if pairs and n >= 1:
        differences = np.stack([better[:, a] - better[:, b] for a, b in pairs])
        adjusted = holm(paired_wilcoxon(differences, alternative="greater"))
        for (a, b), p in zip(pairs, adjusted):
            p_adjusted[a, b] = p
    significant = np.nan_to_num(p_adjusted, nan=1.0) < ALPHA
    wins = significant.sum(axis=1)
    significance_rank = rankdata(-wins, method="min")
    out_entries = {}
    for j, i in enumerate(ids):
        ranks = boot_ranks[j]
        counts = np.bincount(ranks.astype(int), minlength=k + 1)[1:] / ranks.size
        out_entries[i] = {
            "mean": mean_sd(seed_means[i])["mean"], "sd": mean_sd(seed_means[i])["sd"],
            "seeds": len(seed_means[i]), "subject_mean": float(columns[:, j].mean()),
            "ci95": None if low is None else [float(low[j]), float(high[j])],
            "rank": int(full_rank[j]),
            "rank_ci95": [int(np.percentile(ranks, 2.5, method="inverted_cdf")),
                          int(np.percentile(ranks, 97.5, method="inverted_cdf"))],
            "rank_frequencies": {str(r + 1): float(f) for r, f in enumerate(counts) if f > 0},
            "better_than": int(wins[j]), "significance_rank": int(significance_rank[j]),
            "failures": (int(sum(v == "failed" for s in per_entry[i].values()
                                 for x, v in s.items() if x in subjects))
                         if score.key == BMD_SCORE else None),
        }
    order = sorted(range(k), key=lambda j: (full_rank[j], ids[j]))
    return {
        "score": score.key, "title": score.title, "higher_is_better": score.higher_is_better,
        "subjects": n, "split": RANKED_SPLIT, "resamples": n_resamples,
        "bootstrap_seed": seed, "alpha": ALPHA, "failure_value": failure_value,
        "kendall_tau": {"mean": float(np.mean(taus)) if taus else None,
                        "median": float(np.median(taus)) if taus else None},
        "order": [ids[j] for j in order],
        # in full-rank order: p_holm[a][b] is the adjusted p of "order[a] better than order[b]"
        "p_holm": [[None if a == b else float(p_adjusted[order[a], order[b]])
                    for b in range(k)] for a in range(k)],
        "significant": [[bool(significant[order[a], order[b]]) for b in range(k)]
                        for a in range(k)],
        "entries": out_entries,
    }


def comparisons(entries: list[dict[str, Any]], rows: dict[str, list[dict[str, Any]]],
                scores: list[Score], n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                progress: Any = None) -> list[dict[str, Any]]:
    """One comparison per dataset x profile that has subject rows: ``{"dataset", "profile",
    "entries": [ids], "scores": {key: rank_score(...)}}``. ``progress(note)`` is called after
    each score."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        if rows.get(entry_id(e)):
            groups[(e["dataset"], e["profile"])].append(e)
    out = []
    for (dataset, profile), members in sorted(groups.items()):
        ranked = {}
        for score in scores:
            result = rank_score(members, rows, score, n_resamples, seed)
            if result is not None:
                ranked[score.key] = result
            if progress is not None:
                progress(f"{dataset}/{profile} {score.key}")
        out.append({"dataset": dataset, "profile": profile,
                    "entries": [entry_id(e) for e in members], "scores": ranked})
    return out


def attach_rankings(entries: list[dict[str, Any]], comparisons_: list[dict[str, Any]]) -> None:
    """Each entry's ``ranking``: score key -> its numbers in its comparison (absent where the
    entry has no subject rows: the tables show n/a)."""
    by_id = {entry_id(e): e for e in entries}
    for e in entries:
        e["ranking"] = {}
    for comparison in comparisons_:
        for key, result in comparison["scores"].items():
            for i, numbers in result["entries"].items():
                by_id[i]["ranking"][key] = numbers
