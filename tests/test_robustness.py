"""Scoring under corruption: names and severities checked early, mPC / rPC from the per
corruption table, mCE against a stored UNet baseline, density reported as not applicable where
it is, and ``run --robustness`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jmedbench.config import build_config
from jmedbench.data import Evaluation
from jmedbench.engine.build import build_dataset
from jmedbench.engine.preprocess import hu_to_input
from jmedbench.engine.train import predict
from jmedbench.errors import UnknownNameError, UserError
from jmedbench.engine.robustness import (check_severities, evaluate_robustness, resolve_corruptions,
                                  stable_id)
from jmedbench.store import Store, clean_nan

CHOSEN = ["ct_hu_offset", "phone_glare", "elastic"]
PHONE_PHOTO_CRC32 = 3891130626  # zlib.crc32(b"phone_photo")


class ThresholdModel(torch.nn.Module):
    """A fixed 'segmenter': dense bone (> 600 HU) cortical, 150..450 HU cancellous. Its Dice
    is poor but exactly reproducible, which is what these tests need."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cortical = 50 * (x - 0.6)
        cancellous = 50 * torch.minimum(x - 0.15, 0.45 - x)
        return torch.cat([torch.zeros_like(x), cortical, cancellous], dim=1)


def config(**eval_options):
    cfg = build_config("quick", overrides={"data.image_size": 64})
    cfg.eval.robustness = list(eval_options.pop("robustness", CHOSEN))
    cfg.eval.severities = list(eval_options.pop("severities", [1, 5]))
    cfg.eval.robustness_subjects = eval_options.pop("subjects", 1)
    for key, value in eval_options.items():
        setattr(cfg, key, value)
    return cfg


@pytest.fixture(scope="module")
def clean_evaluation(registry):
    cfg = config()
    subjects = build_dataset(registry, cfg).split("test")
    model = ThresholdModel()
    predictions = [predict(model, torch.from_numpy(hu_to_input(s.image))) for s in subjects]
    return model, Evaluation(subjects, predictions, context={"split": "test"})


# -- names and severities ----------------------------------------------------------------------
def test_families_names_and_all_resolve(registry):
    every = resolve_corruptions(registry, ["all"])
    assert len(every) == len(registry.specs("corruptions"))
    phone = resolve_corruptions(registry, ["phone"])
    assert phone and all(s.family == "phone" for s in phone)
    mixed = resolve_corruptions(registry, ["ct", "elastic", "ct_metal"])
    names = [s.name for s in mixed]
    assert len(set(names)) == len(names)  # ct_metal is in ct: listed once
    assert names[0] == "elastic"  # family order (classic, ct, phone), then name
    assert set(names[1:]) == {s.name for s in registry.specs("corruptions") if s.family == "ct"}


@pytest.mark.parametrize("name, hint", [("phne", "phone"), ("gausian_noise", "gaussian_noise"),
                                        ("classik", "classic")])
def test_unknown_names_suggest(registry, name, hint):
    with pytest.raises(UnknownNameError, match=f"did you mean {hint}"):
        resolve_corruptions(registry, [name])


@pytest.mark.parametrize("severities, message", [([0], "severity 0 is the clean image"),
                                                 ([6], "above the highest"),
                                                 (["2"], "not an integer"),
                                                 ([], "empty")])
def test_bad_severities(registry, severities, message):
    with pytest.raises(UserError, match=message):
        check_severities(severities, resolve_corruptions(registry, ["ct"]))


def test_stable_id_does_not_depend_on_the_process():
    assert stable_id("phone_photo") == PHONE_PHOTO_CRC32  # zlib.crc32, not the salted hash()


# -- the evaluation ----------------------------------------------------------------------------
def test_mpc_and_rpc_follow_from_the_table(registry, clean_evaluation):
    model, evaluation = clean_evaluation
    cfg = config(model="fixed")
    result = evaluate_robustness(model, evaluation, registry, cfg)
    summary, table = result["summary"], result["table"]
    assert len(table) == len(CHOSEN) * 2
    assert result["protocol"]["subjects"] == 1 and result["protocol"]["severities"] == [1, 5]
    dice = [row["dice"] for row in table]
    assert summary["mpc_dice"] == pytest.approx(np.mean(dice))
    clean = result["clean"]["dice"]
    assert 0 < clean < 1
    assert summary["rpc_dice"] == pytest.approx(summary["mpc_dice"] / clean)
    for family in ("classic", "ct", "phone"):
        rows = [r["dice"] for r in table if r["family"] == family]
        assert summary[f"mpc_dice_{family}"] == pytest.approx(np.mean(rows))
        assert summary[f"rpc_dice_{family}"] == pytest.approx(np.mean(rows) / clean)
    ce = result["corruptions"]["elastic"]["ce"]
    assert ce == pytest.approx(sum(1 - r["dice"] for r in table if r["corruption"] == "elastic"))
    # no baseline in a store: mCE is reported missing, with the reason
    assert summary["mce"] is None and "no results store" in result["mce"]["reason"]
    # the same seed gives the same corrupted images, hence the same table
    again = evaluate_robustness(model, evaluation, registry, cfg)
    assert clean_nan(again["table"]) == clean_nan(table)  # NaN (undefined HD95) != NaN


def test_density_not_applicable_is_none_with_a_reason(registry, clean_evaluation):
    if not [m for m in registry.specs("metrics") if m.scope == "dataset"]:
        pytest.skip("no dataset-scope (density) metric installed")
    model, evaluation = clean_evaluation
    result = evaluate_robustness(model, evaluation, registry, config(model="fixed"))
    glare = [r for r in result["table"] if r["corruption"] == "phone_glare"]
    hu = [r for r in result["table"] if r["corruption"] == "ct_hu_offset"]
    density_keys = {k for k in result["clean"] if k.startswith("bmd")}
    assert density_keys
    for row in glare:
        assert all(row[k] is None for k in density_keys)
        assert "not applicable" in row["density_note"]
    assert any(isinstance(r.get("bmd_mae"), float) for r in hu)
    # the summary's BMD error under corruption leaves out what is not applicable
    assert result["summary"]["mpc_bmd_mae_phone"] is None


def test_works_without_dataset_metrics(registry, clean_evaluation):
    """The density plugin is optional: without it, BMD is simply absent."""
    model, evaluation = clean_evaluation

    class OnlyImageMetrics:
        def specs(self, kind, pattern=None):
            specs = registry.specs(kind, pattern)
            return [m for m in specs if m.scope == "image"] if kind == "metrics" else specs

        def __getattr__(self, name):
            return getattr(registry, name)

    result = evaluate_robustness(model, evaluation, OnlyImageMetrics(), config(model="fixed"))
    assert "mpc_dice" in result["summary"]
    assert not any(k.startswith("mpc_bmd") for k in result["summary"])
    assert all("bmd_mae" not in row for row in result["table"])


def store_baseline(store: Store, cfg, ce: dict[str, float], severities=(1, 5)) -> str:
    config_dict = cfg.to_dict() | {"model": "unet", "strategy": "baseline"}
    run_id = store.begin_run(config_dict, {})
    protocol = {"dataset": cfg.dataset, "profile": cfg.profile,
                "image_size": cfg.data.image_size, "severities": list(severities),
                "robustness_subjects": cfg.eval.robustness_subjects, "subjects": 1,
                "corruptions": list(ce)}
    store.finish_run(run_id, metrics={}, timings={}, image_rows=[],
                     details={"robustness": {"protocol": protocol,
                                             "corruptions": {k: {"ce": v}
                                                             for k, v in ce.items()}}})
    return run_id


def test_mce_against_the_stored_unet_baseline(registry, clean_evaluation, tmp_path):
    model, evaluation = clean_evaluation
    cfg = config(model="fixed")
    store = Store(tmp_path / "s.sqlite")
    other = store_baseline(store, cfg, {"elastic": 9.0}, severities=(1, 2))  # other protocol
    run_id = store_baseline(store, cfg, {"ct_hu_offset": 0.5, "phone_glare": 1.0,
                                         "elastic": 2.0})
    result = evaluate_robustness(model, evaluation, registry, cfg, store=store)
    ce = {name: row["ce"] for name, row in result["corruptions"].items()}
    expected = np.mean([ce["ct_hu_offset"] / 0.5, ce["phone_glare"] / 1.0, ce["elastic"] / 2.0])
    assert result["summary"]["mce"] == pytest.approx(expected)
    assert result["summary"]["mce_classic"] == pytest.approx(ce["elastic"] / 2.0)
    assert result["mce"]["baseline_run"] == run_id != other
    # a baseline without one of the corruptions: mCE missing, per-family where complete
    store2 = Store(tmp_path / "s2.sqlite")
    store_baseline(store2, cfg, {"elastic": 2.0})
    partial = evaluate_robustness(model, evaluation, registry, cfg, store=store2)
    assert partial["summary"]["mce"] is None and "ct_hu_offset" in partial["mce"]["reason"]
    assert partial["summary"]["mce_classic"] == pytest.approx(ce["elastic"] / 2.0)


def test_the_unet_baseline_itself_has_mce_one(registry, clean_evaluation):
    model, evaluation = clean_evaluation
    result = evaluate_robustness(model, evaluation, registry, config())  # unet / baseline
    assert result["summary"]["mce"] == pytest.approx(1.0)
    assert result["mce"]["baseline_run"] == "this run"


# -- in a run ----------------------------------------------------------------------------------
def test_a_run_stores_the_summary_in_metrics_and_the_table_in_details(registry, tmp_path):
    from jmedbench.engine.run import execute

    cfg = build_config("quick", overrides={"data.image_size": 32, "train.steps": 5})
    cfg.eval.robustness, cfg.eval.severities = ["ct_hu_offset", "phone_jpeg"], [2]
    store = Store(tmp_path / "s.sqlite")
    result = execute(registry, cfg, store)
    assert {"mpc_dice", "rpc_dice", "mce", "mpc_dice_ct", "mpc_dice_phone"} <= set(result.metrics)
    record = store.get_run(result.run_id)
    robust = record["details"]["robustness"]
    assert [r["corruption"] for r in robust["table"]] == ["ct_hu_offset", "phone_jpeg"]
    assert record["metrics"]["mpc_dice"] == pytest.approx(
        np.mean([r["dice"] for r in robust["table"]]))
    assert "robustness" in record["timings"]


# -- from the command line ---------------------------------------------------------------------
def test_unknown_robustness_name_fails_before_training(cli_in_process, tmp_path):
    out = cli_in_process("run", "--profile", "quick", "--robustness", "classic,phne",
                         "--store", str(tmp_path / "s.sqlite"))
    assert out.returncode == 2
    assert "did you mean phone" in out.stderr and "Traceback" not in out.stderr
    assert "train" not in out.stderr  # refused before any progress was shown


@pytest.mark.slow
def test_run_json_with_robustness_and_the_severity_plot(cli, tmp_path):
    store = str(tmp_path / "s.sqlite")
    out = cli("run", "--profile", "quick", "--steps", "5", "--robustness",
              "ct_hu_offset,phone_glare", "--json", "--store", store)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("mpc_dice", "rpc_dice", "mce", "mpc_dice_ct", "rpc_dice_phone"):
        assert key in data
    assert data["mce"] == pytest.approx(1.0)  # unet / baseline is its own reference
    assert data["timings"]["robustness"] > 0
    png = tmp_path / "plot.png"
    shown = cli("corruptions", "plot", data["run_id"], "--store", store, "--out", str(png),
                "--json")
    assert shown.returncode == 0, shown.stderr
    plotted = json.loads(shown.stdout)
    assert plotted["summary"]["mpc_dice"] == data["mpc_dice"]
    assert len(plotted["table"]) == 2 * 3  # quick profile: severities 1, 3, 5
    assert png.stat().st_size > 0
