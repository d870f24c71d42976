"""The MONAI plugin (plugins/jmedbench_monai): the conformance kit for every registered network,
plus what the kit cannot know (no download, width as the first stage's channels, the size
rule, MONAI's own state-dict keys, parameters MONAI builds and never uses removed)."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from jmedbench.errors import UserError
from jmedbench.testing import ModelConformance, build, model_kwargs

MONAI_MODELS = [
    "monai-unet", "monai-attentionunet", "monai-basicunet", "monai-basicunetplusplus",
    "monai-segresnet", "monai-segresnetds", "monai-flexibleunet-efficientnet-b0",
    "monai-swinunetr", "monai-dynunet",
]
WIDTH_MODELS = ["monai-unet", "monai-attentionunet", "monai-basicunet",
                "monai-basicunetplusplus", "monai-segresnet", "monai-segresnetds",
                "monai-dynunet"]


class TestMonaiConformance(ModelConformance):
    """Output sizes, backward, eval, seeded init, state dict, encode, and learning on the
    quick profile: in the default run (so in CI), as issue 22 asks of the library models."""

    model_names = MONAI_MODELS
    learning_is_slow = False


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_registered_models_are_exactly_these(registry):
    assert registry.names("models", "monai-*") == sorted(MONAI_MODELS)
    assert len(MONAI_MODELS) >= 6
    for name in MONAI_MODELS:
        assert registry.owner("models", name) == "monai"
    assert not [p for p in registry.problems if "monai" in p]


def test_built_without_the_network(registry, monkeypatch):
    """FlexibleUNet's backbone would download ImageNet weights with pretrained=True: building
    every network with name resolution and connections refused shows none is fetched."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for name in MONAI_MODELS:
        assert n_params(build(registry.model(name), seed=0)) > 0


def test_width_is_the_first_stage_channel_count(registry):
    """Doubling width multiplies a convolutional network's parameters by about 4."""
    for name in WIDTH_MODELS:
        spec = registry.model(name)
        assert "width" in model_kwargs(spec, 64), name
        small, large = n_params(build(spec, 8)), n_params(build(spec, 16))
        assert 3.5 < large / small < 4.1, name


def test_networks_without_width_keep_their_published_size(registry):
    for name in ["monai-flexibleunet-efficientnet-b0", "monai-swinunetr"]:
        assert "width" not in model_kwargs(registry.model(name), 64), name


def test_a_bad_width_is_one_line(registry):
    with pytest.raises(UserError) as info:
        registry.model("monai-segresnet").factory(width=12)
    assert str(info.value) == ("[model.monai-segresnet] option width: must be a positive "
                               "multiple of 8, got 12")
    with pytest.raises(UserError, match=r"\[model.monai-unet\] option width"):
        registry.model("monai-unet").factory(width=0)


def test_a_size_the_network_cannot_take_is_one_line(registry):
    model = build(registry.model("monai-unet"), seed=0).eval()
    with pytest.raises(UserError) as info, torch.no_grad():
        model(torch.zeros(1, 1, 40, 64))
    assert str(info.value) == ("model 'monai-unet': input 40x64: height and width must be "
                               "multiples of 16 and at least 32")
    swin = build(registry.model("monai-swinunetr"), seed=0).eval()
    with pytest.raises(UserError, match="at least 64"), torch.no_grad():
        swin(torch.zeros(1, 1, 32, 32))


# Deepest encoder stage at width 8 (default where there is no width) for 64x96:
# (channels, reduction).
ENCODER_SHAPES = {
    "monai-unet": (128, 16), "monai-attentionunet": (128, 16), "monai-basicunet": (64, 16),
    "monai-basicunetplusplus": (64, 16), "monai-segresnet": (64, 8),
    "monai-segresnetds": (64, 8), "monai-flexibleunet-efficientnet-b0": (320, 32),
    "monai-swinunetr": (384, 32), "monai-dynunet": (120, 16),
}


@pytest.mark.parametrize("name", MONAI_MODELS)
def test_encode_returns_the_deepest_encoder_stage(registry, name):
    channels, reduction = ENCODER_SHAPES[name]
    model = build(registry.model(name), 8, seed=0).eval()
    with torch.no_grad():
        feats = model.encode(torch.zeros(1, 1, 64, 96))
    assert feats.shape == (1, channels, 64 // reduction, 96 // reduction)


def test_state_dict_keys_are_monais(registry):
    """The wrapper adds no parameter: a plain MONAI UNet with the same plan has the same keys
    and shapes, so weights saved from MONAI load with --weights."""
    from monai.networks.nets import UNet

    ours = build(registry.model("monai-unet"), 16, seed=0)
    plain = UNet(spatial_dims=2, in_channels=1, out_channels=3, channels=(16, 32, 64, 128, 256),
                 strides=(2, 2, 2, 2), num_res_units=2)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in plain.state_dict().items()}
    ours.load_state_dict(plain.state_dict(), strict=True)
    ours.eval(), plain.eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), plain(x))


def test_parameters_monai_never_uses_are_removed(registry):
    flexible = build(registry.model("monai-flexibleunet-efficientnet-b0"), seed=0)
    assert not [k for k in flexible.state_dict() if k.startswith(("encoder._conv_head",
                                                                  "encoder._bn1", "encoder._fc"))]
    # its encoder's BatchNorms learn running statistics at PyTorch's rate, not TensorFlow's 0.01
    # (with 0.01 the learning check predicted only background)
    assert {m.momentum for m in flexible.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)} == {0.1}
    nested = build(registry.model("monai-basicunetplusplus"), 8, seed=0)
    assert [k for k in nested.state_dict() if k.startswith("final_conv")] == \
        ["final_conv_0_4.weight", "final_conv_0_4.bias"]


def test_listed_with_parameter_counts(cli_in_process):
    result = cli_in_process("list", "models", "monai-*", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert sorted(rows) == sorted(MONAI_MODELS)
    assert all(row["params"] and row["params"] > 1e4 for row in rows.values())


def test_a_run_of_a_monai_model_records_the_library_version():
    import importlib.metadata as md

    from jmedbench.provenance import model_provenance
    from jmedbench.registry import get_registry

    recorded = model_provenance(get_registry(), "monai-segresnet")
    assert recorded == {"name": "monai-segresnet", "plugin": "monai",
                        "libraries": {"monai": md.version("monai")}}
