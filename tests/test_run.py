"""A run end to end: metrics stored with provenance, determinism, and bad input from the CLI."""

from __future__ import annotations

import json

import pytest

from jmedbench.config import build_config
from jmedbench.engine.run import execute
from conftest import SHARED_DATA
from jmedbench.store import Store, clean_nan

TINY = {"train.steps": 20, "data.image_size": 32}


def tiny_config(**overrides):
    return build_config("quick", overrides={**TINY, **overrides})


def test_run_stores_metrics_provenance_and_per_image_rows(registry, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    result = execute(registry, tiny_config(seed=1), store)
    record = store.get_run(result.run_id)
    assert record["status"] == "completed"
    assert 0.0 <= record["metrics"]["dice"] <= 1.0
    assert "shift_dice" in record["metrics"]             # cross-site split scored too
    prov = record["provenance"]
    assert {"python", "torch", "jmedbench"} <= set(prov["versions"])
    assert prov["plugins"]["zoo"]["distribution"] == "jmedbench"
    assert prov["host"] and "git_commit" in prov
    assert set(record["timings"]) >= {"data", "train", "evaluate"}
    images = store.image_metrics(result.run_id)
    assert images and {"dice", "iou"} <= set(images[0])
    n_test = record["metrics"]["images"]
    assert sum(1 for r in images if r["split"] == "test") == n_test


def test_same_config_and_seed_give_identical_metrics(registry, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    a = clean_nan(execute(registry, tiny_config(seed=5), store).metrics)  # NaN -> None
    b = clean_nan(execute(registry, tiny_config(seed=5), store).metrics)
    c = clean_nan(execute(registry, tiny_config(seed=6), store).metrics)
    assert a == b
    assert a != c


def test_cli_run_json_quick(cli, tmp_path):
    out = cli("run", "--model", "unet", "--strategy", "baseline", "--profile", "quick",
              "--steps", "10", "--json", "--store", str(tmp_path / "s.sqlite"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert "dice" in data and data["run_id"]
    shown = cli("show", data["run_id"], "--json", "--store", str(tmp_path / "s.sqlite"))
    assert json.loads(shown.stdout)["metrics"]["dice"] == data["dice"]


@pytest.mark.parametrize("args, message", [
    (["run", "--model", "unte"], "unknown model 'unte': did you mean unet"),
    (["run", "--strategy", "baselin"], "unknown strategy 'baselin': did you mean baseline?"),
    (["run", "--dataset", "phantm"], "unknown dataset 'phantm': did you mean phantom"),
    (["run", "--profile", "quik"], "unknown profile 'quik': did you mean quick?"),
    (["show", "no-such-run"], "run id 'no-such-run' not found"),
    (["list", "modles"], "invalid choice: 'modles'"),
])
def test_bad_input_is_one_line_exit_2(cli_in_process, args, message):
    out = cli_in_process(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


def test_bad_config_key_exit_2(cli_in_process, tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[train]\nstpes = 1\n")
    out = cli_in_process("run", "--config", str(f))
    assert out.returncode == 2 and "did you mean 'steps'" in out.stderr and str(f) in out.stderr


def test_unwritable_store_exit_2_and_nothing_lost(cli_in_process, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    out = cli_in_process("run", "--profile", "quick", "--store", str(blocker / "s.sqlite"))
    assert out.returncode == 2 and "cannot open" in out.stderr
    assert blocker.read_text() == "keep me"


def test_list_json(cli_in_process):
    out = cli_in_process("list", "models", "unet*", "--json")
    assert out.returncode == 0
    names = [row["name"] for row in json.loads(out.stdout)]
    assert "unet" in names and all(n.startswith("unet") for n in names)


def test_bad_weights_file_fails_before_anything_is_stored(cli_in_process, tmp_path):
    bad = tmp_path / "w.pt"
    bad.write_bytes(b"not a checkpoint")
    store = tmp_path / "s.sqlite"
    out = cli_in_process("run", "--profile", "quick", "--weights", str(bad), "--store", str(store))
    assert out.returncode == 2 and f"--weights {bad}" in out.stderr
    assert "Traceback" not in out.stderr
    assert Store(store).runs() == []


def test_run_starts_from_given_weights(registry, tmp_path):
    import torch
    from jmedbench.engine.build import build_model
    from jmedbench.weights import save_weights
    cfg = tiny_config(seed=2)
    model, _ = build_model(registry, cfg)
    path = tmp_path / "w.safetensors"
    save_weights(model, path)
    result = execute(registry, tiny_config(seed=2, weights=str(path)), Store(tmp_path / "s.sqlite"))
    assert result.metrics["dice"] >= 0


def test_eval_dataset_is_scored_with_prefixed_metrics_and_no_training_subject(registry,
                                                                              tmp_path):
    """phantom-s holds the same people as phantom (imaged at the other site): those the model
    trained or validated on are left out and said so; the rest are scored under its prefix."""
    store = Store(tmp_path / "s.sqlite")
    result = execute(registry, tiny_config(seed=2, **{"eval.datasets": ["phantom-s"]}), store)
    metrics = store.get_run(result.run_id)["metrics"]
    assert 0.0 <= metrics["phantom_s_dice"] <= 1.0 and metrics["phantom_s_images"] > 0
    assert "phantom_s_bmd_subjects" in metrics
    assert any("phantom-s: " in w and "left out" in w for w in result.warnings)
    images = store.image_metrics(result.run_id)
    assert sum(r["split"] == "eval:phantom_s" for r in images) == metrics["phantom_s_images"]
    details = store.get_run(result.run_id)["details"]
    assert details["eval_datasets"] == {"phantom_s": "phantom-s"}


def test_eval_dataset_keys():
    from jmedbench.engine.run import eval_dataset_key

    assert eval_dataset_key("example") == "example"
    assert eval_dataset_key("phantom-s") == "phantom_s"
    assert eval_dataset_key("nifti:/data/My Scans/") == "nifti_my_scans"


@pytest.mark.parametrize("value, message", [
    ("exampel", "unknown dataset 'exampel': did you mean example"),
    ("phantom", "--eval-dataset phantom: that is the training dataset"),
    ("example,,phantom-s", "--eval-dataset 'example,,phantom-s': an empty name"),
])
def test_bad_eval_dataset_is_one_line_exit_2_and_nothing_stored(cli_in_process, tmp_path, value,
                                                                message):
    store = tmp_path / "s.sqlite"
    out = cli_in_process("run", "--profile", "quick", "--eval-dataset", value,
                         "--store", str(store))
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not store.exists() or Store(store).runs() == []


@pytest.mark.skipif(not (SHARED_DATA / "ct.nii.gz").is_file(),
                    reason=f"shared example CT not found at {SHARED_DATA}")
def test_eval_dataset_scores_the_real_example_ct(registry, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    result = execute(registry, tiny_config(**{"eval.datasets": ["example"]}), store)
    metrics = result.metrics
    assert 0.0 <= metrics["example_dice_cancellous"] <= 1.0
    assert metrics["example_bmd_subjects"] + metrics["example_bmd_failed"] == 1


def test_a_model_that_cannot_take_the_slice_size_is_refused_before_anything_runs(cli_in_process,
                                                                                 tmp_path):
    """PAN on MobileNetV2 needs sides >= 128; the quick profile's 64 px slices would reach its
    pyramid pooling with nothing left to pool (a torch traceback mid-training before)."""
    pytest.importorskip("segmentation_models_pytorch")
    store = tmp_path / "s.sqlite"
    out = cli_in_process("run", "--model", "smp-pan-mobilenet_v2", "--profile", "quick", "--store",
                         str(store))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert ("[data] image_size 64: model 'smp-pan-mobilenet_v2' takes slice sides that are "
            "multiples of 32 and at least 128; 64 is below its minimum 128 (set [data] "
            "image_size = 128") in " ".join(out.stderr.split())
    assert not store.exists() or Store(store).runs() == []
