"""Rankings over subjects with known answers: a clearly better entry ranks first with a tight
rank interval and a significant Wilcoxon test; identical entries are not separated; an entry
that predicts nothing ranks last on every score; BMD failures rank below every measurement;
the clinical endpoint and the agreement statistics on constructed cohorts; the statistics
helpers against hand-computed values."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest

from jmedbench.leaderboard import build
from jmedbench.leaderboard.aggregate import collect_entries, entry_id
from jmedbench.leaderboard.clinical import entry_endpoint
from jmedbench.leaderboard.ranking import comparisons
from jmedbench.leaderboard.subject_scores import SCORES, entry_subject_rows, subject_scores
from jmedbench.stats import holm, lin_concordance, limits_of_agreement, paired_wilcoxon
from jmedbench.store import Store

from leaderboard_stores import add_entry_run, cohort, demo_store, subject_values

SCORE_KEYS = [s.key for s in SCORES]


def ranked(store, n_resamples=200):
    entries = collect_entries(store)
    rows = {entry_id(e): entry_subject_rows(store, e) for e in entries}
    [comparison] = comparisons(entries, rows, list(SCORES), n_resamples=n_resamples)
    return entries, rows, comparison


def by_model(comparison, key):
    return {i.split("__")[0] + "/" + i.split("__")[1]: r
            for i, r in comparison["scores"][key]["entries"].items()}


# -- statistics helpers against hand-computed values --------------------------------------------
def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 0.01*3, 0.03*2, max(0.06, 0.04*1)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_lin_concordance_and_limits_by_hand():
    x = np.array([1.0, 2.0, 3.0])
    assert lin_concordance(x, x) == pytest.approx(1.0)
    # shifted by 1: 2 s_xy / (s_x^2 + s_y^2 + 1) with population variances 2/3
    assert lin_concordance(x, x + 1) == pytest.approx((4 / 3) / (4 / 3 + 1))
    assert lin_concordance(x[:1], x[:1]) is None
    loa = limits_of_agreement(np.array([2.0, 4.0]), np.array([1.0, 1.0]))  # diffs 1, 3
    assert loa["bias"] == 2.0 and loa["loa_high"] == pytest.approx(2 + 1.96 * math.sqrt(2))


def test_wilcoxon_all_equal_is_no_evidence_and_a_clear_shift_is():
    p = paired_wilcoxon(np.stack([np.zeros(12), np.full(12, 0.1)]), alternative="greater")
    assert p[0] == 1.0 and p[1] < 0.001  # 12 positive differences: exact p = 2**-12


def test_subject_scores_average_the_foreground_classes():
    values = subject_values(cohort(2)[0], 0.8, 4.0, None)
    values["dice"] = [0.99, 0.6, None]  # cancellous not scored
    scores = subject_scores(values)
    assert scores["dice"] == pytest.approx(0.6) and scores["hd95"] == 4.0
    assert scores["bmd_abs_error"] is None  # failed: ranked by the comparison's rule


# -- rankings with known answers -----------------------------------------------------------------
def test_clearly_better_entry_ranks_first_with_tight_interval_and_significant_test(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    people = cohort(15)
    for seed in (0, 1, 2):
        add_entry_run(store, "good", "baseline", seed, people,
                      lambda p: 0.90 + 0.02 * math.sin(p["index"] + seed))
        add_entry_run(store, "poor", "baseline", seed, people,
                      lambda p: 0.80 + 0.02 * math.sin(p["index"] + seed))
    _, _, comparison = ranked(store)
    for key in SCORE_KEYS:
        result = by_model(comparison, key)
        good, poor = result["good/baseline"], result["poor/baseline"]
        assert (good["rank"], good["rank_ci95"]) == (1, [1, 1]), key
        assert (poor["rank"], poor["rank_ci95"]) == (2, [2, 2]), key
        assert good["better_than"] == 1 and poor["better_than"] == 0, key
        order = comparison["scores"][key]["order"]
        assert order[0].startswith("good") and comparison["scores"][key]["p_holm"][0][1] < 0.05
        assert comparison["scores"][key]["significant"] == [[False, True], [False, False]]
        assert comparison["scores"][key]["kendall_tau"]["mean"] == pytest.approx(1.0)
    dice = by_model(comparison, "dice")["good/baseline"]
    # mean over seeds of subject means, SD over seeds, bootstrap CI around the subject mean
    assert dice["seeds"] == 3 and dice["mean"] == pytest.approx(
        np.mean([0.90 + 0.02 * math.sin(i + s) for s in (0, 1, 2) for i in range(15)]))
    assert dice["sd"] > 0 and dice["ci95"][0] < dice["subject_mean"] < dice["ci95"][1]


def test_identical_entries_are_not_separated(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    people = cohort(15)
    for model in ("twin-a", "twin-b"):
        add_entry_run(store, model, "baseline", 0, people,
                      lambda p: 0.85 + 0.03 * math.sin(p["index"]))
    _, _, comparison = ranked(store)
    for key in SCORE_KEYS:
        result = comparison["scores"][key]
        a, b = result["entries"].values()
        assert a["better_than"] == b["better_than"] == 0, key
        assert result["p_holm"][0][1] == result["p_holm"][1][0] == 1.0
        low = max(a["rank_ci95"][0], b["rank_ci95"][0])
        high = min(a["rank_ci95"][1], b["rank_ci95"][1])
        assert low <= high, key  # the rank intervals overlap
        assert a["ci95"] == b["ci95"]


def test_entry_that_predicts_nothing_ranks_last_on_every_score(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    demo_store(store, seeds=(0,), n=12)
    entries, rows, comparison = ranked(store)
    assert set(comparison["scores"]) == set(SCORE_KEYS)
    k = len(comparison["entries"])
    for key in SCORE_KEYS:
        empty = by_model(comparison, key)["empty/baseline"]
        assert empty["rank"] == k and empty["rank_ci95"] == [k, k], key
        assert empty["significance_rank"] == k and empty["better_than"] == 0, key
        assert comparison["scores"][key]["order"][-1].startswith("empty"), key
    clinical = entry_endpoint(rows[next(i for i in rows if i.startswith("empty"))])
    assert clinical["failure_rate"]["mean"] == 1.0
    assert all(clinical[f"misclassified_{t}"]["mean"] == 1.0 for t in (100, 110, 160))
    assert clinical["k_error"]["mean"] is None  # no predicted BMD: no cohort line


def test_a_bmd_failure_ranks_below_any_measured_error(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    people = cohort(10)
    # "wild" measures every BMD with a large error; "careful" is exact but fails on one subject
    add_entry_run(store, "wild", "baseline", 0, people, lambda p: 0.8,
                  bmd_error=lambda p: 40.0 + p["index"])
    add_entry_run(store, "careful", "baseline", 0, people, lambda p: 0.8,
                  bmd_error=lambda p: None if p["index"] == 3 else 0.0)
    _, rows, comparison = ranked(store)
    result = comparison["scores"]["bmd_abs_error"]
    assert result["failure_value"] == 40.0 + 9 + 1.0  # largest measured |error| + 1 HU
    careful = by_model(comparison, "bmd_abs_error")["careful/baseline"]
    assert careful["failures"] == 1
    assert careful["mean"] == pytest.approx(50.0 / 10)  # the failed subject counts as 50 HU
    clinical = entry_endpoint(rows[next(i for i in rows if i.startswith("careful"))])
    assert clinical["failure_rate"]["mean"] == pytest.approx(0.1)
    assert clinical["misclassified_110"]["mean"] == pytest.approx(0.1)  # only the failure


# -- the clinical endpoint ---------------------------------------------------------------------
def test_clinical_endpoint_known_answers(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    people = cohort(20)
    add_entry_run(store, "exact", "baseline", 0, people, lambda p: 0.9, bmd_error=lambda p: 0.0)
    add_entry_run(store, "offset", "baseline", 0, people, lambda p: 0.9,
                  bmd_error=lambda p: 10.0)
    # error growing by 0.5 HU per year: every line's slope k is 0.5 smaller
    add_entry_run(store, "tilted", "baseline", 0, people, lambda p: 0.9,
                  bmd_error=lambda p: 0.5 * (p["age"] - 60))
    entries = collect_entries(store)
    end = {e["model"]: entry_endpoint(entry_subject_rows(store, e)) for e in entries}
    mean = lambda model, key: end[model][key]["mean"]  # noqa: E731
    assert mean("exact", "k_error") == pytest.approx(0, abs=1e-9)
    assert mean("exact", "ratio_error") == pytest.approx(0, abs=1e-9)
    assert mean("exact", "ccc") == pytest.approx(1.0)
    assert mean("exact", "bias") == pytest.approx(0, abs=1e-9)
    assert mean("offset", "bias") == pytest.approx(10.0)
    assert mean("offset", "loa_low") == pytest.approx(10.0)  # no spread in the differences
    assert mean("offset", "k_error") == pytest.approx(0, abs=1e-9)
    assert mean("offset", "Z_error") == pytest.approx(10.0)
    assert mean("offset", "ccc") < 1.0
    assert mean("tilted", "k_error") == pytest.approx(0.5)
    assert mean("tilted", "ratio_error") > 0
    # vs the true BMDs, the exact entry keeps only the reference masks' own slope error
    assert mean("exact", "k_error_true") < 0.3
    test_refs = [p["bmd_reference"] for p in people if p["split"] == "test"]
    for t in (100, 110, 160):  # +10 HU moves exactly the references in (t - 10, t] across t
        expected = np.mean([t - 10 < r <= t for r in test_refs])
        assert mean("offset", f"misclassified_{t}") == pytest.approx(expected)
        assert mean("exact", f"misclassified_{t}") == 0.0
    assert mean("offset", "abs_error_mode") == 10.0
    assert mean("offset", "abs_error_mean") == 20.0 and mean("offset", "abs_error_median") == 15.0
    groups = end["exact"]["seeds"]["0"]["groups"]
    assert set(groups) == {"F/N", "M/N", "F/S", "M/S"}
    assert groups["F/N"]["k_true"] == pytest.approx(3.7, abs=0.5)  # the cohort's age law


# -- the build: files, old runs, the corruption table --------------------------------------------
def test_build_publishes_rankings_figures_and_per_subject_scores(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    demo_store(store, seeds=(0, 1, 2), n=12)
    out = tmp_path / "lb"
    summary = build(store, out, "jmedbench leaderboard build", n_resamples=200)
    assert summary["comparisons"] == 1 and len(summary["ranking_figures"]) == 2
    entry = json.loads((out / "entries" / "unet__sas__phantom__leaderboard__torch.json")
                       .read_text())
    assert len(entry["subjects"]) == 3 * 24  # 3 seeds x (12 test + 12 cross-site) subjects
    assert entry["subjects"][0]["scores"]["dice"] is not None
    assert entry["ranking"]["dice"]["rank"] == 1 and entry["ranking"]["dice"]["seeds"] == 3
    assert entry["clinical"]["k_error"]["sd"] is not None  # spread over the 3 seeds
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert {"dice_rank_low", "bmd_abs_error_ci95_high", "ratio_error", "ccc",
            "misclassified_160", "abs_error_median"} <= set(rows[0])
    ranking = (out / "ranking.md").read_text()
    assert "Kendall's tau" in ranking and "Clinical endpoint" in ranking
    assert "| 5 | 5–5 | empty/baseline |" in ranking
    markdown = (out / "leaderboard.md").read_text()
    assert "Rank Dice" in markdown and "Miscl. 110 HU %" in markdown
    for text in (markdown, ranking):  # every table keeps its columns ("|error|" is escaped)
        tables: list[list[int]] = [[]]
        for line in text.splitlines():
            if line.startswith("|"):
                tables[-1].append(len(re.split(r"(?<!\\)\|", line)))
            elif tables[-1]:
                tables.append([])
        assert all(len(set(widths)) == 1 for widths in tables if widths), tables
    from PIL import Image
    for path in summary["ranking_figures"]:
        with Image.open(path) as figure:
            assert figure.format == "PNG" and figure.width > 400


def test_runs_without_subject_rows_still_render(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    people = cohort(6)
    add_entry_run(store, "old", "baseline", 0, people, lambda p: 0.7, with_subjects=False)
    add_entry_run(store, "new", "baseline", 0, people, lambda p: 0.9)
    out = tmp_path / "lb"
    build(store, out, "test", n_resamples=100)
    old = json.loads((out / "entries" / "old__baseline__phantom__leaderboard__torch.json")
                     .read_text())
    assert old["ranking"] == {} and old["clinical"] is None and old["subjects"] == []
    row = next(line for line in (out / "leaderboard.md").read_text().splitlines()
               if "| old |" in line)
    assert "n/a" in row
    # only store without any subject rows: still every file, no ranking figures
    store2 = Store(tmp_path / "s2.sqlite")
    add_entry_run(store2, "old", "baseline", 0, people, lambda p: 0.7, with_subjects=False)
    summary = build(store2, out, "test", n_resamples=100)
    assert summary["comparisons"] == 0 and summary["ranking_figures"] == []
    assert not list(out.glob("blob-*.png"))  # the earlier build's figures are gone
    assert "has per-subject scores" in (out / "ranking.md").read_text()


def test_corruption_by_severity_csv(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    people = cohort(4)

    def details(dice):
        return {"robustness": {"table": [
            {"corruption": "noise", "family": "ct", "severity": s, "density": "ok",
             "dice": dice - 0.1 * s, "bmd_mae": 2.0 * s} for s in (1, 3)] + [
            {"corruption": "phone", "family": "photo", "severity": 1, "density":
             "not_applicable", "dice": dice - 0.3, "bmd_mae": None}]}}
    for seed, dice in ((0, 0.9), (1, 0.8)):
        add_entry_run(store, "unet", "baseline", seed, people, lambda p: 0.9,
                      details=details(dice))
    build(store, tmp_path / "lb", "test", n_resamples=100)
    rows = list(csv.DictReader((tmp_path / "lb" / "robustness.csv").open()))
    assert [(r["corruption"], r["severity"]) for r in rows] == [
        ("noise", "1"), ("noise", "3"), ("phone", "1")]
    assert float(rows[0]["dice"]) == pytest.approx(0.75)       # mean of 0.8 and 0.7
    assert float(rows[0]["dice_sd"]) == pytest.approx(0.1 / math.sqrt(2))
    assert rows[0]["seeds"] == "2" and float(rows[1]["bmd_mae"]) == 6.0
    assert rows[2]["bmd_mae"] == ""                              # not applicable: empty
