"""Training strategies (aug, geo, stn, ssl, sas) and the ablation, against known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from jmedbench.cli import main
from jmedbench.config import build_config
from jmedbench.data import stack_slices
from jmedbench.engine.ablation import ablation_strategies, main_effects
from jmedbench.engine.build import build_dataset, build_strategy, check_strategy_options
from jmedbench.engine.preprocess import hu_to_input
from jmedbench.engine.run import execute
from jmedbench.errors import UserError
from jmedbench.hookspecs import hookimpl
from jmedbench.registry import Registry, get_registry
from jmedbench.specs import ModelSpec
from jmedbench.stats import mean_half_width as mean_ci
from jmedbench.store import Store
from jmedbench.strategy import ComposedStrategy, TrainContext

from jmedbench_strategies import SAS_PARTS as COMPONENTS
from jmedbench_strategies.aug import (INPUT_MAX, INPUT_MIN, ColourAugmentation,
                                      GeometricAugmentation, random_affine, warp_images,
                                      warp_labels)
from jmedbench_strategies.ssl import ContrastivePretraining, MomentumContrast, info_nce
from jmedbench_strategies.stn import SpatialTransformerSegmenter, invert_affine, warp
from jmedbench_zoo.unet import UNet


@pytest.fixture(scope="module")
def phantom():
    """The quick profile's phantom at 64 x 64: (N, H, W) HU images and labels."""
    registry = get_registry()
    cfg = build_config("quick")
    images, labels = stack_slices(build_dataset(registry, cfg).split("train"))
    return images, labels.astype(np.int64)


def batch(phantom, n=4):
    images, labels = phantom
    return torch.from_numpy(hu_to_input(images[:n])), torch.from_numpy(labels[:n])


# -- stn ----------------------------------------------------------------------------------------

def test_stn_at_init_is_the_identity():
    torch.manual_seed(0)
    plain = UNet(width=8)
    wrapped = SpatialTransformerSegmenter(plain)  # the same module, so the same weights
    plain.eval(), wrapped.eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        expected, got = plain(x), wrapped(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_stn_localisation_shape_and_identity_init():
    wrapped = SpatialTransformerSegmenter(UNet(width=8))
    channels = [m.out_channels for m in wrapped.localisation.features
                if isinstance(m, nn.Conv2d)]
    linears = [(m.in_features, m.out_features) for m in wrapped.localisation.regressor
               if isinstance(m, nn.Linear)]
    assert channels == [8, 16, 32, 64]
    assert linears == [(256, 32), (32, 6)]
    theta = wrapped.transform(torch.randn(3, 1, 96, 64))
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(3, 2, 3)
    torch.testing.assert_close(theta, identity)


def _label_map(size=64):
    yy, xx = np.mgrid[0:size, 0:size] / size
    r = ((xx - 0.5) / 0.22) ** 2 + ((yy - 0.55) / 0.16) ** 2
    label = np.zeros((size, size), np.int64)
    label[r < 1] = 1
    label[r < 0.6] = 2
    return torch.from_numpy(label)


NONTRIVIAL = torch.tensor([[[0.92, -0.17, 0.15], [0.19, 1.05, -0.10]]])  # rotate, scale, shift


def test_forward_then_inverse_warp_round_trips_a_mask():
    label = _label_map()[None, None].float()
    moved = warp(label, NONTRIVIAL, mode="nearest")
    back = warp(moved, invert_affine(NONTRIVIAL), mode="nearest")
    foreground = label > 0
    assert (moved[foreground] != label[foreground]).float().mean() > 0.3  # it really moves
    assert (back == label).float().mean() > 0.99
    assert (back[foreground] == label[foreground]).float().mean() > 0.97


def test_stn_outputs_stay_in_the_original_frame():
    """With a non-identity transform and a segmenter that echoes its (warped) input, the
    wrapper's output must be the input again: the logits are warped back."""
    wrapped = SpatialTransformerSegmenter(nn.Identity(), in_channels=3)
    with torch.no_grad():
        wrapped.localisation.regressor[-1].bias.copy_(NONTRIVIAL.flatten())
    onehot = nn.functional.one_hot(_label_map(), 3).permute(2, 0, 1)[None].float()
    wrapped.eval()
    with torch.no_grad():
        out = wrapped(onehot)
        inside = warp(onehot, NONTRIVIAL)
    truth = onehot.argmax(1)
    foreground = truth > 0
    assert (inside.argmax(1)[foreground] != truth[foreground]).float().mean() > 0.3
    assert (out.argmax(1) == truth).float().mean() > 0.99
    assert (out.argmax(1)[foreground] == truth[foreground]).float().mean() > 0.97


def test_stn_wraps_any_model_and_passes_encode_through():
    class NoEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    wrapped = SpatialTransformerSegmenter(NoEncoder())
    assert wrapped(torch.randn(2, 1, 40, 56)).shape == (2, 3, 40, 56)
    assert not hasattr(wrapped, "encode")
    unet = UNet(width=8)
    with_encoder = SpatialTransformerSegmenter(unet)
    x = torch.randn(1, 1, 64, 64)
    unet.eval()
    torch.testing.assert_close(with_encoder.encode(x), unet.encode(x))


def test_stn_trains_the_localisation_net(phantom):
    from jmedbench.engine.train import dice_ce_loss
    wrapped = SpatialTransformerSegmenter(UNet(width=8))
    x, y = batch(phantom)
    dice_ce_loss(wrapped(x), y, torch.ones(3)).backward()
    assert wrapped.localisation.regressor[-1].weight.grad.abs().sum() > 0


# -- aug, geo -----------------------------------------------------------------------------------

def test_aug_never_changes_labels_and_changes_images(phantom):
    x, y = batch(phantom, 8)
    labels_before = y.clone()
    out_x, out_y = ColourAugmentation().augment(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(out_y, labels_before) and out_y.dtype == torch.int64
    assert out_x.shape == x.shape and out_x.dtype == x.dtype
    per_image_change = (out_x - x).abs().amax(dim=(1, 2, 3))
    assert (per_image_change > 1e-3).sum() >= 6  # each op applies with p = 0.8
    assert out_x.min() >= INPUT_MIN and out_x.max() <= INPUT_MAX


def test_aug_strength_zero_is_the_identity(phantom):
    x, y = batch(phantom)
    out_x, _ = ColourAugmentation(aug_strength=0).augment(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(out_x, x)


def test_aug_is_determined_by_the_generator(phantom):
    x, y = batch(phantom)
    aug = ColourAugmentation()
    a, _ = aug.augment(x, y, torch.Generator().manual_seed(3))
    b, _ = aug.augment(x, y, torch.Generator().manual_seed(3))
    c, _ = aug.augment(x, y, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sas_augmentation_keeps_labels(phantom):
    x, y = batch(phantom)
    sas = build_strategy(get_registry(), "sas", {})
    _, out_y = sas.augment(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(out_y, y)


def test_geo_moves_image_and_label_together():
    label = _label_map()[None].expand(4, -1, -1).contiguous()
    image = label[:, None].float()  # an image whose values are its labels
    generator = torch.Generator().manual_seed(1)
    out_image, out_label = GeometricAugmentation(geo_rotate_deg=20, geo_scale=0.2).augment(
        image, label, generator)
    assert (out_label != label).float().mean() > 0.02
    assert (out_image[:, 0].round().long() == out_label).float().mean() > 0.97
    assert set(out_label.unique().tolist()) <= {0, 1, 2}


def test_warp_labels_with_the_identity_is_exact():
    label = _label_map()[None]
    theta = random_affine(1, torch.Generator().manual_seed(0), 0.0, 0.0, 0.0, flip=False)
    assert torch.equal(warp_labels(label, theta), label)
    torch.testing.assert_close(warp_images(label[:, None].float(), theta), label[:, None].float(),
                               atol=1e-5, rtol=0)


# -- ssl ----------------------------------------------------------------------------------------

def test_info_nce_equals_a_hand_computation():
    rng = np.random.default_rng(0)

    def unit(a):
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    q, k, queue = unit(rng.normal(size=(3, 4))), unit(rng.normal(size=(3, 4))), unit(
        rng.normal(size=(5, 4)))
    t = 0.07
    expected = 0.0
    for i in range(3):
        pos = np.exp(q[i] @ k[i] / t)
        neg = np.exp(queue @ q[i] / t).sum()
        expected += -np.log(pos / (pos + neg))
    expected /= 3
    got = info_nce(*(torch.from_numpy(a) for a in (q, k, queue)), temperature=t)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_momentum_encoder_follows_the_update_rule():
    torch.manual_seed(0)
    model = UNet(width=4)
    moco = MomentumContrast(model, channels=32, dim=16, queue_size=8, momentum=0.9,
                            generator=torch.Generator().manual_seed(0))
    keys_before = [p.detach().clone() for p in moco.key_parameters()]
    queries_before = [p.detach().clone() for p in moco.query_parameters()]
    optimiser = torch.optim.Adam(moco.query_parameters(), lr=1e-2)
    x = torch.randn(4, 1, 32, 32)
    moco.step(x, x + 0.01 * torch.randn_like(x), optimiser, torch.Generator().manual_seed(1))
    queries_after = [p.detach() for p in moco.query_parameters()]
    changed = 0
    for k0, q0, q1, k1 in zip(keys_before, queries_before, queries_after,
                              moco.key_parameters()):
        torch.testing.assert_close(k1, 0.9 * k0 + 0.1 * q1, rtol=1e-6, atol=1e-7)
        changed += int(not torch.equal(q0, q1))
        assert k1.grad is None
    assert changed > 0  # the optimiser moved the query side, so the rule is not vacuous
    assert all(not p.requires_grad for p in moco.key_parameters())


def test_queue_is_a_ring_buffer():
    moco = MomentumContrast(UNet(width=4), channels=32, dim=4, queue_size=5)
    first = torch.eye(4)[:3]
    moco.enqueue(first)
    moco.enqueue(torch.full((3, 4), 0.5))
    assert moco.queue[0].eq(0.5).all() and moco.queue[3:].eq(0.5).all()  # wrapped around
    assert torch.equal(moco.queue[1:3], torch.eye(4)[1:3])
    assert moco.pointer == 1
    moco.enqueue(torch.arange(28.0).view(7, 4))  # more keys than places: the newest 5 stay
    assert sorted(moco.queue[:, 0].tolist()) == [8.0, 12.0, 16.0, 20.0, 24.0]


def test_ssl_loss_falls_on_the_phantom(phantom):
    images, labels = phantom
    torch.manual_seed(0)
    model = UNet(width=8)
    calls = []
    ctx = TrainContext(images, labels, None, seed=0, model_spec=get_registry().model("unet"),
                       progress=lambda task, done, total: calls.append((task, done, total)))
    # 60 iterations: on the CT-like phantom (issue 17) the loss is noisy over the first 30
    # (3.55 -> 3.49 mean of the first and last 5), then falls (first 10: 3.55, last 10: 2.74)
    ssl = ContrastivePretraining(ssl_iterations=60, ssl_batch_size=8)
    ssl.pretrain(model, ctx)
    losses = ssl.losses
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.1
    assert ctx.budget["ssl_iterations"] == 60 and ctx.budget["ssl_images"] == 60 * 8
    assert [c[1] for c in calls] == list(range(61)) and calls[0][2] == 60


def test_ssl_changes_only_the_encoder():
    torch.manual_seed(0)
    model = UNet(width=4)
    decoder_before = [p.detach().clone() for p in model.up.parameters()]
    stem_before = model.stem[0].weight.detach().clone()
    images = np.random.default_rng(0).normal(0, 300, (12, 32, 32)).astype(np.float32)
    ctx = TrainContext(images, np.zeros((12, 32, 32), np.int64), None, seed=0)
    ContrastivePretraining(ssl_iterations=2, ssl_batch_size=4).pretrain(model, ctx)
    assert all(torch.equal(a, b) for a, b in zip(decoder_before, model.up.parameters()))
    assert not torch.equal(stem_before, model.stem[0].weight)


class _NoEncoderModel(nn.Module):
    def __init__(self, in_channels=1, num_classes=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class _NoEncoderPlugin:
    @staticmethod
    @hookimpl
    def jmedbench_models():
        return [ModelSpec("tiny-no-encoder", _NoEncoderModel, family="test",
                          description="a model without encode()", citation="",
                          input_multiple=1, min_size=8)]


def test_a_model_without_an_encoder_gets_a_clear_error(tmp_path):
    registry = Registry().load_entry_points()
    registry.register(_NoEncoderPlugin, "no-encoder")
    cfg = build_config("quick", overrides={"model": "tiny-no-encoder", "strategy": "ssl+stn",
                                           "train.steps": 1})
    with pytest.raises(UserError) as info:
        execute(registry, cfg, Store(tmp_path / "s.sqlite"))
    message = str(info.value)
    assert "tiny-no-encoder" in message and "encoder" in message
    assert "unet" in message.split("Compatible models:")[1]


# -- composition, options, CLI ------------------------------------------------------------------

def test_compositions_and_options():
    registry = get_registry()
    sas = build_strategy(registry, "sas", {"ssl_iterations": 7, "aug_strength": 0.5,
                                           "geo_scale": 0.3})
    assert isinstance(sas, ComposedStrategy) and sas.components == ("ssl", "stn", "aug")
    assert sas.parts[0].iterations == 7 and sas.parts[2].strength == 0.5
    combo = build_strategy(registry, "ssl+stn", {"ssl_iterations": 3})
    assert combo.components == ("ssl", "stn")
    check_strategy_options(registry, "aug", {"ssl_iterations": 3})  # a profile's key: allowed
    with pytest.raises(UserError, match="aug_strenght"):
        check_strategy_options(registry, "aug", {"aug_strenght": 1.0})


def test_list_strategies_json(capsys):
    assert main(["list", "strategies", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"baseline", "aug", "stn", "ssl", "sas"} <= set(rows)
    assert rows["sas"]["components"] == ["ssl", "stn", "aug"]


def _tiny_config(tmp_path, steps=3, ssl_iterations=3):
    path = tmp_path / "tiny.toml"
    path.write_text(f"[train]\nsteps = {steps}\n[strategy]\nssl_iterations = {ssl_iterations}\n"
                    "ssl_batch_size = 4\n"
                    "[data.phantom]\ntrain_subjects = 2\ntest_subjects = 1\n"
                    "shift_subjects = 1\nslices_per_subject = 2\n")
    return str(path)


def test_run_sas_tiny_budget(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    rc = main(["run", "--model", "unet", "--strategy", "sas", "--profile", "quick", "--config",
               _tiny_config(tmp_path), "--json", "--store", str(store)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 <= out["dice"] <= 1 and "shift_dice" in out
    record = Store(store).get_run(out["run_id"])
    assert record["details"]["budget"]["ssl_iterations"] == 3
    assert record["details"]["strategy"]["components"] == ["ssl", "stn", "aug"]


def test_run_sas_quick_profile(tmp_path, capsys):
    rc = main(["run", "--model", "unet", "--strategy", "sas", "--profile", "quick", "--json",
               "--store", str(tmp_path / "s.sqlite")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dice"] > 0.3 and out["timings"]["pretrain"] > 0


# -- ablation -----------------------------------------------------------------------------------

def test_ablation_strategies_are_the_eight_subsets():
    names = ablation_strategies()
    assert len(names) == 8 == len(set(names)) and names[0] == "baseline"
    subsets = {frozenset() if n == "baseline" else frozenset(n.split("+")) for n in names}
    assert len(subsets) == 8 and all(s <= set(COMPONENTS) for s in subsets)


def test_mean_ci_uses_the_t_distribution():
    stat = mean_ci([1.0, 2.0, 3.0, float("nan")])
    # s = 1, n = 3, t_{0.975, 2} = 4.302652729911275
    assert stat["mean"] == 2.0 and stat["n"] == 3 and stat["missing"] == 1
    assert stat["ci95"] == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    assert math.isnan(mean_ci([0.5])["ci95"]) and mean_ci([0.5])["mean"] == 0.5


def test_main_effects_recover_known_effects():
    per_seed = {}
    for seed, noise in ((0, 0.0), (1, 0.01)):
        for s in ablation_strategies():
            parts = () if s == "baseline" else s.split("+")
            value = 0.8 + 0.1 * ("ssl" in parts) + 0.05 * ("aug" in parts) + noise
            per_seed[(s, seed)] = {"dice": value, "shift_dice": value,
                                   "bmd_mae": float("nan")}
    effects = main_effects(per_seed, [0, 1])
    assert effects["ssl"]["dice"]["mean"] == pytest.approx(0.1)
    assert effects["aug"]["dice"]["mean"] == pytest.approx(0.05)
    assert effects["stn"]["dice"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert effects["ssl"]["bmd_mae"]["n"] == 0


def test_ablation_command_tiny_budget(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    rc = main(["ablation", "--model", "unet", "--seeds", "0,1", "--profile", "quick",
               "--config", _tiny_config(tmp_path, steps=2, ssl_iterations=2), "--json",
               "--store", str(store)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in out["rows"]] == ablation_strategies()
    assert all(len(r["runs"]) == 2 and r["dice"]["n"] == 2 for r in out["rows"])
    assert all(r["dice"]["ci95"] is not None for r in out["rows"])
    assert ("bmd_mae" in out["missing_metrics"]) == all(
        r["bmd_mae"]["n"] == 0 for r in out["rows"])
    saved = Store(store)
    assert len(saved.runs(kind="run", status="completed")) == 16
    summary = saved.get_run(out["ablation_id"])
    assert summary["kind"] == "ablation" and summary["details"]["seeds"] == [0, 1]
    # --resume reuses all 16 runs instead of training again
    rc = main(["ablation", "--model", "unet", "--seeds", "0,1", "--profile", "quick",
               "--config", _tiny_config(tmp_path, steps=2, ssl_iterations=2), "--json",
               "--store", str(store), "--resume"])
    assert rc == 0 and len(saved.runs(kind="run")) == 16
