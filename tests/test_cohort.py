"""Cohort age regressions against independent least squares, the paper's binning, the CSV
reader's errors, and ``jmedbench cohort`` (CSV and dataset)."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from scipy import stats

from jmedbench.data import Dataset, Subject
from jmedbench.density.cohort import (CohortSubject, age_bin, cohort_from_masks,
                                      cohort_statistics, fit_age_line, read_cohort_csv)
from jmedbench.density.johnsonsu import fit_johnson_su, johnson_su_mode
from jmedbench.errors import UserError

LAW = {("F", "N"): (3.66, 1361.28), ("M", "N"): (2.62, 1314.88)}  # paper, stored values


def law_hu(sex, site, age):
    k, z = LAW[(sex, site)]
    return -k * age + z - 1024.0


def write_csv(path, rows, header="subject,sex,site,age,bmd"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def noisy_cohort(seed=0, per_group=12):
    rng = np.random.default_rng(seed)
    rows = []
    for (sex, site) in LAW:
        for i in range(per_group):
            age = int(rng.integers(39, 81))
            rows.append((f"{sex}{site}{i}", sex, site, age,
                         round(law_hu(sex, site, age) + 1024 + rng.normal(0, 12), 2)))
    return rows


# -- statistics against independent computations ----------------------------------------------

def test_personal_slopes_equal_polyfit_and_linregress(tmp_path):
    rows = noisy_cohort()
    result = cohort_statistics(read_cohort_csv(write_csv(tmp_path / "c.csv", rows)))
    for g in result.groups:
        if g.statistics != "personal":
            continue
        ages = np.array([r[3] for r in rows if (r[1], r[2]) == (g.sex, g.site)], float)
        bmds = np.array([r[4] for r in rows if (r[1], r[2]) == (g.sex, g.site)], float)
        slope, intercept = np.polyfit(ages, bmds, 1)
        assert g.k == pytest.approx(-slope, rel=1e-10)
        assert g.Z == pytest.approx(intercept, rel=1e-10)
        ref = stats.linregress(ages, bmds)
        t = stats.t.ppf(0.975, len(ages) - 2)
        assert g.r2 == pytest.approx(ref.rvalue ** 2, rel=1e-10)
        assert g.k_ci_low == pytest.approx(-slope - t * ref.stderr, rel=1e-10)
        assert g.k_ci_high == pytest.approx(-slope + t * ref.stderr, rel=1e-10)
        assert g.Z_ci_high - g.Z == pytest.approx(t * ref.intercept_stderr, rel=1e-10)
        assert g.n == g.n_subjects == len(ages)


def test_group_statistics_regress_bin_means_on_bin_centres(tmp_path):
    rows = noisy_cohort(seed=1)
    result = cohort_statistics(read_cohort_csv(write_csv(tmp_path / "c.csv", rows)))
    for g in result.groups:
        if g.statistics != "group":
            continue
        members = [r for r in rows if (r[1], r[2]) == (g.sex, g.site)]
        bins = {}
        for r in members:
            bins.setdefault(3 * ((r[3] - 39) // 3) + 40, []).append(r[4])
        centres = sorted(bins)
        means = [np.mean(bins[c]) for c in centres]
        slope, intercept = np.polyfit(centres, means, 1)
        assert g.ages == centres and g.bmds == pytest.approx(means)
        assert (g.k, g.Z) == pytest.approx((-slope, intercept), rel=1e-10)
        assert g.n == len(centres) and g.bin_bmd == "mean of persons"


def test_three_year_bins_as_the_paper():
    assert [age_bin(a) for a in (39, 40, 41, 42, 43, 44, 78, 79, 80)] == \
        [40, 40, 40, 43, 43, 43, 79, 79, 79]
    assert age_bin(41.4) == 40 and age_bin(41.6) == 43


def test_female_male_ratio_is_the_slope_ratio(tmp_path):
    result = cohort_statistics(read_cohort_csv(write_csv(tmp_path / "c.csv", noisy_cohort(2))))
    for kind in ("personal", "group"):
        f = next(g for g in result.groups if g.sex == "F" and g.statistics == kind)
        m = next(g for g in result.groups if g.sex == "M" and g.statistics == kind)
        assert f.female_male_ratio == pytest.approx(f.k / m.k)
        assert f.female_male_ratio_ci_low < f.female_male_ratio < f.female_male_ratio_ci_high
    assert {r["statistics"] for r in result.ratios()} == {"personal", "group"}


def test_exact_line_gives_exact_law():
    line = fit_age_line([40, 50, 60, 70], [-3.66 * a + 1361.28 for a in (40, 50, 60, 70)])
    assert (line.k, line.Z, line.r2) == pytest.approx((3.66, 1361.28, 1.0))


# -- pooled pixels and the true law -------------------------------------------------------------

def synthetic_subject(subject_id, sex, site, age, rng, pixels=3000):
    """A subject whose cancellous HU are a Johnson-Su sample with mode on the age law."""
    a, b, scale = rng.uniform(-1.5, -0.5), rng.uniform(1.8, 3.0), rng.uniform(60, 90)
    mode = law_hu(sex, site, age)
    loc = mode - scale * johnson_su_mode(a, b, 0.0, 1.0)
    side = int(np.ceil(np.sqrt(pixels / 2)))
    image = np.full((2, side + 4, side + 4), -1000.0, np.float32)
    label = np.zeros(image.shape, np.uint8)
    label[:, 2:side + 2, 2:side + 2] = 2
    n = int((label == 2).sum())
    image[label == 2] = np.rint(loc + scale * np.sinh((rng.standard_normal(n) - a) / b))
    return Subject(subject_id, image, label, (3.0, 0.7, 0.7), site=site, sex=sex,
                   age=float(age), true_bmd=mode)


def test_cohort_from_masks_recovers_the_generating_law():
    rng = np.random.default_rng(3)
    subjects = [synthetic_subject(f"{sex}{i}", sex, "N", 39 + 3 * i, rng)
                for sex in ("F", "M") for i in range(14)]
    members, left_out = cohort_from_masks(subjects, [s.label for s in subjects],
                                          stored_offset=1024.0)
    assert left_out == [] and len(members) == len(subjects)
    result = cohort_statistics(members, stored_offset=1024.0)
    for g in result.groups:
        k_law, z_law = LAW[(g.sex, g.site)]
        assert g.k_ci_low <= k_law <= g.k_ci_high, g
        assert g.k == pytest.approx(k_law, abs=0.15)
        assert g.Z == pytest.approx(z_law, abs=8.0)
        if g.statistics == "group":
            assert g.bin_bmd == "pooled pixels"
    # a group point is the mode of one fit to the pooled pixels of its bin
    g = next(g for g in result.groups if g.statistics == "group" and g.sex == "F")
    in_first_bin = [m for m in members if m.sex == "F" and age_bin(m.age) == g.ages[0]]
    pooled = np.concatenate([m.values for m in in_first_bin])
    assert g.bmds[0] == pytest.approx(fit_johnson_su(pooled).mode + 1024.0)


def test_subjects_without_age_or_with_empty_masks_are_listed():
    rng = np.random.default_rng(4)
    s1 = synthetic_subject("a", "F", "N", 50, rng)
    s2 = synthetic_subject("b", "F", "N", 60, rng)
    s2.age = None
    members, left_out = cohort_from_masks([s1, s2, s1], [s1.label, s2.label,
                                                         np.zeros_like(s1.label)])
    assert [m.subject for m in members] == ["a"]
    assert len(left_out) == 2 and "no sex or age" in left_out[0]
    assert "no pixel with label 2" in left_out[1]


# -- bad input ------------------------------------------------------------------------------------

def test_csv_missing_column_names_it(tmp_path):
    path = write_csv(tmp_path / "c.csv", [("a", "F", "N", 50)], header="subject,sex,site,age")
    with pytest.raises(UserError, match=r"line 1: missing column\(s\) bmd"):
        read_cohort_csv(path)


def test_csv_non_numeric_age_names_the_line(tmp_path):
    rows = noisy_cohort()[:4] + [("x", "F", "N", "fifty", 150.0)]
    with pytest.raises(UserError, match=r"c.csv line 6: age 'fifty' is not a number"):
        read_cohort_csv(write_csv(tmp_path / "c.csv", rows))


def test_csv_duplicate_subject_names_both_lines(tmp_path):
    rows = [("a", "F", "N", 50, 1100), ("a", "F", "N", 51, 1101)]
    with pytest.raises(UserError, match="line 3: subject 'a' already on line 2"):
        read_cohort_csv(write_csv(tmp_path / "c.csv", rows))


def test_fewer_than_three_subjects_in_a_group_is_an_error(tmp_path):
    rows = noisy_cohort()[:14]  # 12 F N and 2 M N
    with pytest.raises(UserError, match="sex=M site=N has 2 subject"):
        cohort_statistics(read_cohort_csv(write_csv(tmp_path / "c.csv", rows)))


# -- the command ----------------------------------------------------------------------------------

def test_cohort_command_json_and_plot(tmp_path, capsys):
    from jmedbench.cli import main

    csv_path = write_csv(tmp_path / "c.csv", noisy_cohort(5))
    plot = tmp_path / "fig7.png"
    assert main(["cohort", str(csv_path), "--json", "--plot", str(plot)]) == 0
    groups = json.loads(capsys.readouterr().out)
    assert isinstance(groups, list) and len(groups) == 4
    for g in groups:
        for key in ("sex", "site", "statistics", "k", "Z", "r2", "n", "k_ci_low", "k_ci_high",
                    "Z_ci_low", "Z_ci_high"):
            assert key in g
    assert {(g["sex"], g["statistics"]) for g in groups} == {
        ("F", "personal"), ("F", "group"), ("M", "personal"), ("M", "group")}
    assert plot.stat().st_size > 1000


@pytest.mark.parametrize("rows,header,message", [
    ([("a", "F", "N", 50)], "subject,sex,site,age", "missing column(s) bmd"),
    ([("a", "F", "N", "x", 1)], "subject,sex,site,age,bmd", "line 2: age 'x' is not a number"),
    ([("a", "F", "N", 50, 1), ("b", "F", "N", 60, 2)], "subject,sex,site,age,bmd",
     "has 2 subject(s)"),
])
def test_cohort_command_bad_csv_exits_2_with_one_line(tmp_path, capsys, rows, header, message):
    from jmedbench.cli import main

    path = write_csv(tmp_path / "c.csv", rows, header=header)
    assert main(["cohort", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err


def test_cohort_command_needs_a_csv_or_a_dataset(capsys):
    from jmedbench.cli import main

    assert main(["cohort"]) == 2
    assert "either FILE.csv or --dataset" in capsys.readouterr().err


def _law_dataset_plugin():
    from jmedbench.hookspecs import hookimpl
    from jmedbench.specs import DatasetSpec

    def make(seed=0, image_size=64):
        rng = np.random.default_rng(seed)
        test = [synthetic_subject(f"{sex}{i}", sex, "N", 39 + 4 * i, rng, pixels=2000)
                for sex in ("F", "M") for i in range(11)]
        return Dataset({"train": test[:1], "test": test[1:]}, name="lawtest",
                       info={"age_law_stored_values": {"FN": {"k": 3.66, "Z": 1361.28},
                                                       "MN": {"k": 2.62, "Z": 1314.88}}})

    @hookimpl
    def jmedbench_datasets():
        return [DatasetSpec("lawtest", make, "subjects on the paper's law, exact modes")]

    return types.SimpleNamespace(__name__="lawtest_plugin", jmedbench_datasets=jmedbench_datasets)


def test_cohort_command_on_a_dataset_recovers_its_law(monkeypatch, capsys):
    import jmedbench.registry as registry_module
    from jmedbench.cli import main

    reg = registry_module.Registry()
    reg.register(_law_dataset_plugin(), "lawtest")
    monkeypatch.setattr(registry_module, "get_registry", lambda refresh=False: reg)
    assert main(["cohort", "--dataset", "lawtest", "--profile", "quick", "--splits", "test",
                 "--stored-values", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    personal = [g for g in groups if g["statistics"] == "personal"]
    assert len(personal) == 2
    for g in personal:
        assert g["masks"] == "ground truth" and g["splits"] == "test"
        assert g["k_ci_low"] <= g["k_law"] <= g["k_ci_high"]
        assert g["k"] == pytest.approx(g["k_law"], abs=0.2)
        assert g["k"] == pytest.approx(g["k_true"], abs=0.2)


@pytest.mark.slow
def test_cohort_from_a_trained_model_recovers_the_phantoms_law(tmp_path, capsys):
    """Train the quick profile's UNet, measure BMD on its masks of the subjects it did not
    train on, and recover the age slope of those subjects' true BMDs (about 4 CPU-minutes)."""
    from jmedbench.cli import main

    config = tmp_path / "more.toml"
    config.write_text("[data.phantom]\ntest_subjects = 16\nshift_subjects = 12\n")
    assert main(["cohort", "--dataset", "phantom", "--profile", "quick", "--config",
                 str(config), "--model", "unet", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    personal = [g for g in groups if g["statistics"] == "personal"]
    assert {(g["sex"], g["site"]) for g in personal} == {("F", "N"), ("M", "N"), ("F", "S"),
                                                          ("M", "S")}
    for g in personal:
        assert g["masks"].startswith("model unet")
        assert g["k_ci_low"] <= g["k_true"] <= g["k_ci_high"], g
        assert abs(g["k"] - g["k_true"]) < 1.0, g
