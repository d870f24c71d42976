"""``jmedbench profile``: known FLOP and parameter counts, the memory method on a known
allocation, size and name errors as one line, JSON output, storing profiles."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

import jmedbench.cli.profile as profile_cmd
from jmedbench.cli import main
from jmedbench.errors import UnknownNameError, UserError
from jmedbench.hookspecs import hookimpl
from jmedbench.engine.profiling import (PROFILE_KEYS, check_size, peak_step_memory, profile_model,
                                 select_models, store_profile, stored_profiles)
from jmedbench.registry import Registry
from jmedbench.specs import ModelSpec
from jmedbench.store import Store
from jmedbench.weights import save_weights


class OneConv(nn.Module):
    """3x3 convolution straight to the classes: FLOPs and parameters known by hand."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv(x)


class TwoConv(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, num_classes, 1))

    def forward(self, x):
        return self.body(x)


def _spec(name, factory, **kw):
    return ModelSpec(name, factory, family="test", description="d", citation="c", **kw)


class ProfilePlugin:
    @hookimpl
    def jmedbench_models(self):
        return [_spec("one-conv", OneConv, input_multiple=8, min_size=16),
                _spec("two-conv", TwoConv, input_multiple=8, min_size=16),
                _spec("two-conv-big", TwoConv, input_multiple=32, min_size=64,
                      defaults={"width": 16})]


@pytest.fixture
def reg() -> Registry:
    registry = Registry()
    registry.register(ProfilePlugin(), "profile-test")
    return registry


@pytest.fixture
def cli_registry(reg, monkeypatch):
    monkeypatch.setattr(profile_cmd, "get_registry", lambda: reg)
    return reg


def test_known_flops_and_parameters(reg):
    row = profile_model(reg, "one-conv", size=32, batch=2, repeats=1, warmup=0)
    assert set(PROFILE_KEYS) <= set(row)
    assert row["params"] == row["params_total"] == 3 * 1 * 3 * 3
    # 32*32 output pixels x 3 classes x 9 multiply-adds, a multiply-add counted as 2.
    assert row["gflops"] == 2 * 32 * 32 * 3 * 9 / 1e9
    assert row["weights_mib"] == pytest.approx(27 * 4 / 2**20, rel=1e-5)
    assert row["train_images_per_s"] == pytest.approx(2 / (row["train_step_ms"] / 1000), rel=1e-4)
    assert row["forward_ms"] > 0 and row["threads"] == torch.get_num_threads()


def test_defaults_and_weights_are_used(reg, tmp_path):
    row = profile_model(reg, "two-conv-big", size=64, batch=1, repeats=1, warmup=0,
                        memory=False)
    assert row["options"] == {"width": 16}
    assert row["params"] == (1 * 16 * 9 + 16) + (16 * 3 + 3)
    assert row["train_peak_mib"] is None
    path = save_weights(TwoConv(width=16), tmp_path / "w.safetensors")
    row = profile_model(reg, "two-conv-big", size=64, batch=1, repeats=1, warmup=0,
                        memory=False, weights=str(path))
    assert row["weights_file"] == str(path)
    with pytest.raises(UserError, match="shape mismatch for 'body.0.weight'"):
        profile_model(reg, "two-conv", size=64, batch=1, weights=str(path))


def test_peak_memory_of_a_known_allocation():
    def step():
        kept = torch.ones(1024, 1024, dtype=torch.uint8)  # 1 MiB live at once, then 2 MiB
        more = torch.ones(1024, 1024, dtype=torch.uint8)
        del kept, more

    peak = peak_step_memory(step)
    assert peak is not None
    assert 2 * 2**20 <= peak < 2 * 2**20 + 64 * 1024


def test_training_memory_grows_with_the_batch(reg):
    small = profile_model(reg, "two-conv", size=64, batch=1, repeats=1, warmup=1)
    large = profile_model(reg, "two-conv", size=64, batch=8, repeats=1, warmup=1)
    # Activations scale with the batch; the ratio stays below 8 because of fixed costs.
    assert 4 < large["train_peak_mib"] / small["train_peak_mib"] <= 8.5


def test_sizes_the_model_cannot_take(reg):
    spec = reg.model("two-conv-big")
    with pytest.raises(UserError, match=r"^--size 48: model 'two-conv-big' takes sides that are "
                                        r"multiples of 32 and at least 64; 48 is below its "
                                        r"minimum 64 \(try --size 64\)$"):
        check_size(spec, 48)
    with pytest.raises(UserError, match=r"100 is not a multiple of 32 \(try --size 128\)"):
        check_size(spec, 100)
    check_size(spec, 96)


def test_names_and_patterns(reg):
    assert [s.name for s in select_models(reg, "two*")] == ["two-conv", "two-conv-big"]
    with pytest.raises(UnknownNameError, match="did you mean two-conv"):
        select_models(reg, "two-cnv")
    with pytest.raises(UserError, match="no torch model matches"):
        select_models(reg, "zzz*")


def test_store_profile_is_a_profile_run(reg, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    row = profile_model(reg, "one-conv", size=16, batch=1, repeats=1, warmup=0, memory=False)
    run_id = store_profile(store, row, reg)
    record = store.get_run(run_id)
    assert record["kind"] == "profile" and record["status"] == "completed"
    assert record["model"] == "one-conv" and record["backend"] == "torch"
    assert record["metrics"]["params"] == 27 and record["metrics"]["gflops"] == row["gflops"]
    assert record["config"]["size"] == 16
    assert [p["params"] for p in stored_profiles(store)] == [27]
    assert store.runs(kind="run") == []  # never mixed with training runs


# -- the command, in process with the test registry ----------------------------------------
def test_cli_json_has_params_for_each_model(cli_registry, capsys):
    code = main(["profile", "--model", "*conv*", "--size", "32", "--batch", "1",
                 "--repeats", "1", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    rows = json.loads(captured.out)
    assert [r["model"] for r in rows] == ["one-conv", "two-conv"]
    assert rows[0]["params"] == 27
    # The pattern also matched a model that cannot take 32 px: skipped, and said so.
    assert "skipped: two-conv-big: --size 32 is below its minimum 64" in captured.err


def test_cli_table_and_save(cli_registry, capsys, tmp_path):
    store_path = tmp_path / "s.sqlite"
    code = main(["profile", "--model", "one-conv", "--size", "16", "--batch", "1",
                 "--repeats", "1", "--save", "--store", str(store_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "1 model profile(s): 16x16, training batch 1" in out
    assert "stored 1 profile(s)" in out
    assert stored_profiles(Store(store_path))[0]["model"] == "one-conv"


@pytest.mark.parametrize("args, message", [
    (["--model", "two-conv-big", "--size", "40"], "--size 40: model 'two-conv-big' takes sides "
                                                  "that are multiples of 32"),
    (["--model", "two-cnv"], "unknown model 'two-cnv': did you mean two-conv"),
    (["--model", "two*", "--size", "8"], "--size 8: none of the 2 models matching 'two*' "
                                         "takes this size"),
    (["--model", "one-conv", "--weights", "missing.pt"], "--weights missing.pt: file not found"),
    (["--model", "two*", "--weights", "w.pt"], "--weights: give one model, not a pattern"),
    (["--model", "one-conv", "--batch", "0"], "--batch 0: must be at least 1"),
])
def test_cli_bad_input_is_one_line_exit_2(cli_registry, capsys, args, message):
    code = main(["profile", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err.replace("\n", " ") and err.count("error:") == 1


def test_cli_mismatched_weights(cli_registry, capsys, tmp_path):
    path = save_weights(TwoConv(width=4), tmp_path / "w.pt")
    code = main(["profile", "--model", "two-conv", "--size", "16", "--weights", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "shape mismatch for 'body.0.weight': (4, 1, 3, 3) in the file, (8, 1, 3, 3) in model " \
           "'two-conv'" in err.replace("\n", " ")


def test_installed_command_profiles_the_unet(cli):
    out = cli("profile", "--model", "unet", "--size", "32", "--batch", "1", "--repeats", "1",
              "--threads", "1", "--json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["model"] == "unet" and row["params"] > 1_000_000 and row["gflops"] > 0
    assert row["threads"] == 1
