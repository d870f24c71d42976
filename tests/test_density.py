"""Johnson-Su mode and maximum-likelihood fit, BMD from a mask with its diagnostics, and the
``jmedbench density`` command, against known answers (closed forms, scipy's fit, the paper)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from jmedbench.density import (EmptyMaskError, bmd_from_mask, bmd_from_values, fit_johnson_su,
                               johnson_su_mode)
from jmedbench.density.bmd import mode_standard_error, secondary_peak
from jmedbench.density.johnsonsu import FitInputError
from jmedbench.errors import UserError

FIGURE6 = (-1.89, 2.85, 1061.43, 143.84)  # the paper's Figure 6 fit, stored values


def jsu_sample(n, a, b, loc, scale, seed, integer=True):
    rng = np.random.default_rng(seed)
    x = loc + scale * np.sinh((rng.standard_normal(n) - a) / b)
    return np.rint(x) if integer else x


# -- the mode ----------------------------------------------------------------------------------

def test_figure6_mode_is_1152_54():
    assert johnson_su_mode(*FIGURE6) == pytest.approx(1152.54, abs=0.005)


@pytest.mark.parametrize("b,loc,scale", [(0.7, 0.0, 1.0), (2.85, 1061.43, 143.84),
                                         (5.0, -30.0, 12.0)])
def test_symmetric_johnson_su_has_its_mode_at_loc(b, loc, scale):
    assert johnson_su_mode(0.0, b, loc, scale) == pytest.approx(loc, abs=1e-9)


@pytest.mark.parametrize("params", [FIGURE6, (1.3, 0.8, 50.0, 30.0), (-0.4, 1.7, 200.0, 80.0)])
def test_mode_is_the_argmax_of_scipys_pdf(params):
    a, b, loc, scale = params
    mode = johnson_su_mode(*params)
    grid = np.linspace(mode - 5 * scale, mode + 5 * scale, 200001)
    argmax = grid[np.argmax(stats.johnsonsu.pdf(grid, a, b, loc=loc, scale=scale))]
    assert mode == pytest.approx(argmax, abs=grid[1] - grid[0])


def test_mode_rejects_invalid_parameters():
    with pytest.raises(ValueError):
        johnson_su_mode(0.0, -1.0, 0.0, 1.0)


# -- the fit against scipy -----------------------------------------------------------------------

@pytest.mark.parametrize("params,n,seed", [
    ((-1.89, 2.85, 37.43, 143.84), 10_000, 0),   # Figure 6 in HU
    ((-0.9, 1.4, 120.0, 60.0), 10_000, 1),
    ((1.2, 3.3, 250.0, 90.0), 20_000, 2),
])
def test_fit_agrees_with_scipy_and_is_at_least_as_likely(params, n, seed):
    x = jsu_sample(n, *params, seed)
    ours = fit_johnson_su(x)
    theirs = stats.johnsonsu.fit(x)
    assert ours.converged, ours.message
    assert abs(ours.mode - johnson_su_mode(*theirs)) < 0.5
    loglik_scipy = -stats.johnsonsu.nnlf(theirs, x)
    assert ours.loglik >= loglik_scipy - 1e-3
    # the reported log-likelihood is the sample's, as scipy computes it
    assert ours.loglik == pytest.approx(-stats.johnsonsu.nnlf(ours.params, x), abs=1e-6 * n)


@pytest.mark.slow
def test_fit_agrees_with_scipy_on_a_million_values():
    x = jsu_sample(1_000_000, -1.89, 2.85, 37.43, 143.84, seed=7)
    ours = fit_johnson_su(x)
    theirs = stats.johnsonsu.fit(x)
    assert abs(ours.mode - johnson_su_mode(*theirs)) < 0.5
    assert ours.loglik >= -stats.johnsonsu.nnlf(theirs, x) - 1e-3


def test_fit_recovers_the_generating_mode():
    params = (-1.2, 2.2, 80.0, 70.0)
    fit = fit_johnson_su(jsu_sample(200_000, *params, seed=3))
    se = mode_standard_error(fit)
    assert 0 < se < 1.0
    assert fit.mode == pytest.approx(johnson_su_mode(*params), abs=max(4 * se, 0.5))


def test_binning_of_float_values_barely_moves_the_fit():
    x = jsu_sample(100_000, -1.2, 2.2, 80.0, 70.0, seed=4, integer=False)
    binned = fit_johnson_su(x)                 # rounded to min(1, IQR/256) HU for the search
    exact = fit_johnson_su(x, bin_width=None)  # every distinct value as it is
    assert binned.bin_width is not None and binned.bin_width <= 1.0
    assert exact.bin_width is None and exact.distinct_values == x.size
    assert abs(binned.mode - exact.mode) < 0.01
    assert binned.loglik == pytest.approx(stats.johnsonsu.logpdf(x, *binned.params).sum(),
                                          rel=1e-12)
    assert exact.loglik >= binned.loglik - 1e-6  # the exact optimum is at least as likely
    assert exact.loglik - binned.loglik < 0.01


def test_integer_values_are_used_exactly():
    x = jsu_sample(5000, -1.0, 2.0, 100.0, 50.0, seed=5)
    fit = fit_johnson_su(x)
    assert fit.bin_width == 1.0
    assert fit.distinct_values == np.unique(x).size
    assert fit.counts.sum() == x.size


def test_lognormal_boundary_sample_is_still_fitted():
    """A left-skewed sample whose percentiles are not of SU type (Slifker-Shapiro gives no
    start): found by the start grid, it once ran to the lognormal limit."""
    x = jsu_sample(10_000, 2.756, 1.3136, 56.23, 131.81, seed=11)
    ours = fit_johnson_su(x)
    theirs = stats.johnsonsu.fit(x)
    assert ours.converged
    assert ours.loglik >= -stats.johnsonsu.nnlf(theirs, x) - 1e-3


def test_symmetric_lighter_tails_give_the_normal_limit_whose_mode_is_the_mean():
    """Every integer 0-100 fifty times: symmetric, lighter-tailed than any Johnson-Su. The
    likelihood rises all the way to the family's normal limit; the fit is that limit."""
    x = np.repeat(np.arange(101.0), 50)
    fit = fit_johnson_su(x)
    assert fit.limit == "normal" and fit.converged and "normal limit" in fit.message
    assert fit.mode == pytest.approx(50.0, abs=1e-6)
    normal_loglik = stats.norm.logpdf(x, x.mean(), x.std()).sum()
    assert fit.loglik == pytest.approx(normal_loglik, abs=1e-3)
    result = bmd_from_values(x)
    assert result.bmd == pytest.approx(50.0, abs=1e-6)
    assert any("normal limit" in note for note in result.notes)
    assert not any("converge" in w for w in result.warnings)
    assert result.mode_se == pytest.approx(x.std() / math.sqrt(x.size), rel=1e-6)


def test_a_newton_run_that_cannot_move_stops_instead_of_spinning(monkeypatch):
    """On a flat ridge (a uniform sample's likelihood rising towards the lognormal edge) a
    Newton run reaches points where the only step that does not lose is too short to move the
    point; repeated, it would spin to the iteration limit (11,040 profile evaluations for this
    sample before the fix, 1,916 after). The fit still ends on the same boundary."""
    import jmedbench.density.johnsonsu as js

    calls = []
    profile = js._profile
    monkeypatch.setattr(js, "_profile", lambda *a, **k: calls.append(1) or profile(*a, **k))
    fit = js.fit_johnson_su(np.random.default_rng(2).uniform(0, 100, 20_000))
    assert fit.limit == "lognormal"
    assert len(calls) < 4000


@pytest.mark.parametrize("loc, log_scale, on_ridge", [
    (-65.0, math.log(5e-4), True),     # a stop seen on one CPU: 1.3e5 scales below the values
    (-1.7, math.log(1e-3), True),      # 1,200 scales below
    (-1.5, math.log(2e-3), False),     # 500 scales: the asinh is not yet a log to rounding
    (0.3, math.log(1e-4), False),      # loc among the values: an interior Johnson-Su
    (101.7, math.log(1e-3), True),     # above the values, the right-skewed side
])
def test_a_stop_far_out_on_the_lognormal_ridge_is_that_boundary(loc, log_scale, on_ridge):
    """Where Newton stops inside the box on the lognormal ridge depends on the CPU's rounding
    (the ridge is flat); such a stop is the lognormal boundary, reported as one."""
    from jmedbench.density.johnsonsu import _on_lognormal_ridge

    x = np.linspace(-0.5, 100.5, 50)
    assert _on_lognormal_ridge(np.array([loc, log_scale]), x) is on_ridge


@pytest.mark.parametrize("seed", range(4))
def test_uniform_sample_ends_on_a_boundary_at_least_as_likely_as_the_normal(seed):
    """A uniform sample has no interior optimum: the fit is the normal limit, or the lognormal
    edge where a slight skew of the sample makes that more likely; never a crash."""
    x = np.random.default_rng(seed).uniform(0, 100, 20_000)
    fit = fit_johnson_su(x)
    assert fit.limit in ("normal", "lognormal")
    # (the fit's normal limit uses the values rounded to its grid: a few 1e-5 nats lower)
    assert fit.loglik >= stats.norm.logpdf(x, x.mean(), x.std()).sum() - 1e-3
    assert abs(fit.mode - x.mean()) < 5.0


def test_near_normal_small_sample_that_overflowed_is_fitted():
    """b = 6.3, n = 468: the Newton search once walked scale to exp(68881) here."""
    x = jsu_sample(468, -0.76, 6.32, 150.0, 65.9, seed=247)
    fit = fit_johnson_su(x)
    assert math.isfinite(fit.mode) and math.isfinite(fit.loglik)
    assert fit.loglik >= stats.norm.logpdf(x, x.mean(), x.std()).sum() - 1e-6


@pytest.mark.parametrize("values,match", [([1.0, 2.0, 3.0], "at least 5"),
                                          ([1.0, 2.0, np.nan, 4.0, 5.0, 6.0], "NaN"),
                                          ([1.0, np.inf, 2.0, 2.0, 3.0, 1.0], "NaN/inf"),
                                          ([1.0, 1.0, 2.0, 2.0, 2.0, 1.0], "distinct")])
def test_fit_rejects_degenerate_input(values, match):
    with pytest.raises(FitInputError, match=match) as raised:
        fit_johnson_su(np.array(values))
    assert isinstance(raised.value, UserError) and isinstance(raised.value, ValueError)


@pytest.mark.parametrize("values,match", [([], "only 0 pixels"), ([150.0] * 50, "same value"),
                                          ([100.0, 200.0] * 50, "3 distinct"),
                                          ([100.0, np.nan, 120.0, 130.0, 140.0, 150.0],
                                           "NaN/inf")])
def test_bmd_of_unfittable_values_is_a_user_error(values, match):
    with pytest.raises(UserError, match=match):
        bmd_from_values(np.array(values))


# -- BMD from a mask and its diagnostics --------------------------------------------------------

def _volume_with_cancellous(values: np.ndarray, shape=(4, 40, 40)):
    image = np.full(shape, -1000.0, np.float32)
    mask = np.zeros(shape, np.uint8)
    flat_mask = mask.reshape(-1)
    flat_mask[: values.size] = 2
    image.reshape(-1)[: values.size] = values
    return image, mask


def test_bmd_in_hu_and_in_stored_values():
    values = jsu_sample(5000, -1.89, 2.85, 37.43, 143.84, seed=6)
    image, mask = _volume_with_cancellous(values)
    hu = bmd_from_mask(image, mask)
    stored = bmd_from_mask(image, mask, stored_values=True)
    assert hu.bmd == pytest.approx(fit_johnson_su(values).mode, abs=1e-9)
    assert stored.bmd == pytest.approx(hu.bmd + 1024.0, abs=1e-9)
    assert stored.bmd_hu == hu.bmd_hu and hu.unit == "HU"
    assert hu.n_pixels == 5000 and hu.warnings == []


def test_empty_mask_and_shape_mismatch_are_user_errors():
    image = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(EmptyMaskError, match="no pixel with label 2"):
        bmd_from_mask(image, np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(UserError, match="does not match the image shape"):
        bmd_from_mask(image, np.zeros((2, 8, 9), np.uint8))
    assert issubclass(EmptyMaskError, UserError)


def test_mode_standard_error_matches_the_spread_over_repeats():
    modes, ses = [], []
    for seed in range(120):
        result = bmd_from_values(jsu_sample(2000, -1.89, 2.85, 37.43, 143.84, seed=100 + seed))
        modes.append(result.bmd_hu)
        ses.append(result.mode_se)
    assert np.std(modes) == pytest.approx(np.mean(ses), rel=0.25)


def test_clean_masks_raise_no_leak_or_fit_warning():
    rng = np.random.default_rng(12)
    for i in range(60):
        n = int(rng.choice([300, 1000, 3000, 20000]))
        a, b, scale = rng.uniform(-2.5, 0.5), rng.uniform(1.0, 3.5), rng.uniform(30, 150)
        result = bmd_from_values(jsu_sample(n, a, b, 100.0, scale, seed=1000 + i,
                                            integer=bool(i % 2)))
        bad = [w for w in result.warnings if "leaky" in w or "poor fit" in w
               or "converge" in w]
        assert bad == [], (n, a, b, scale, bad)


def test_leak_into_cortical_bone_is_reported_with_numbers():
    clean = jsu_sample(20_000, -1.2, 2.4, 100.0, 80.0, seed=13)
    leak = np.rint(np.random.default_rng(14).normal(700.0, 150.0, 2_000))
    result = bmd_from_values(np.concatenate([clean, leak]))
    leaky = [w for w in result.warnings if "leaky" in w]
    assert leaky and "%" in leaky[0]
    assert result.diagnostics["secondary_peak"]["location"] > 400
    assert any("poor fit" in w for w in result.warnings)
    assert secondary_peak(clean) is None or \
        bmd_from_values(clean).diagnostics["secondary_peak"]["excess_z"] < 3


def test_too_few_pixels_and_stored_value_images_are_warned():
    few = bmd_from_values(jsu_sample(120, -1.2, 2.4, 100.0, 80.0, seed=15))
    assert any("too few pixels: 120" in w for w in few.warnings)
    stored = bmd_from_values(jsu_sample(5000, -1.2, 2.4, 1124.0, 80.0, seed=16))
    assert any("stored values" in w for w in stored.warnings)


def test_constant_values_are_a_user_error():
    with pytest.raises(UserError, match="same value"):
        bmd_from_values(np.full(100, 150.0))


# -- the command --------------------------------------------------------------------------------

nib = pytest.importorskip("nibabel")


def _write_case(tmp_path, mask_shape=None, label=2):
    rng = np.random.default_rng(21)
    image = np.full((40, 40, 6), -1000, np.int16)          # x, y, z (RAS)
    image[5:35, 5:35, :] = 40
    mask = np.zeros(mask_shape or image.shape, np.uint8)
    inner = jsu_sample(20 * 20 * 6, -1.89, 2.85, 37.43, 143.84, seed=22).reshape(20, 20, 6)
    image[10:30, 10:30, :] = inner.astype(np.int16)
    if mask_shape is None:
        mask[10:30, 10:30, :] = label
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    return tmp_path / "ct.nii.gz", tmp_path / "mask.nii.gz", inner


def test_density_command_json_and_plot(tmp_path, capsys):
    from jmedbench.cli import main

    ct, mask, inner = _write_case(tmp_path)
    plot = tmp_path / "fig6.png"
    assert main(["density", str(ct), "--mask", str(mask), "--json", "--stored-values",
                 "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("bmd", "bmd_hu", "unit", "mode_se", "n_pixels", "fit", "warnings",
                "diagnostics"):
        assert key in out
    for key in ("a", "b", "loc", "scale", "loglik", "converged", "iterations"):
        assert key in out["fit"]
    assert out["n_pixels"] == inner.size
    assert out["bmd"] == pytest.approx(fit_johnson_su(inner).mode + 1024.0, abs=1e-6)
    assert plot.stat().st_size > 1000


def test_density_command_bad_input_exits_2_with_one_line(tmp_path, capsys):
    from jmedbench.cli import main

    ct, mask, _ = _write_case(tmp_path)
    assert main(["density", str(ct), "--mask", str(mask), "--label", "7"]) == 2
    err = capsys.readouterr().err
    assert "no pixel with label 7" in err and "Traceback" not in err
    other = tmp_path / "other"
    other.mkdir()
    _, bad_mask, _ = _write_case(other, mask_shape=(40, 40, 5))
    assert main(["density", str(ct), "--mask", str(bad_mask)]) == 2
    err = capsys.readouterr().err
    assert "does not match" in err and "Traceback" not in err


@pytest.mark.parametrize("label,expected,says", [(1, 1, True), (2, 2, False)])
def test_density_command_measures_label_1_of_a_binary_mask(tmp_path, capsys, label, expected,
                                                           says):
    """A binary mask (labels 0 and 1, what most tools write) is measured without --label and
    the command says so; a jmedbench label map keeps the cancellous label 2."""
    from jmedbench.cli import main

    ct, mask, inner = _write_case(tmp_path, label=label)
    assert main(["density", str(ct), "--mask", str(mask), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["label"] == expected and out["n_pixels"] == inner.size
    assert out["bmd_hu"] == pytest.approx(fit_johnson_su(inner).mode, abs=1e-6)
    assert ("binary mask (labels 0 and 1): measuring label 1" in captured.err) is says
