"""The segmentation_models_pytorch plugin (plugins/jmedbench_smp): the conformance kit for every
registered model, plus what the kit cannot know (no download, the encoder option and its
errors, the size rule, smp's own state-dict keys, unused encoder stages removed)."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from jmedbench.errors import UserError
from jmedbench.testing import ModelConformance, build, model_kwargs

SMP_MODELS = [
    "smp-unet-resnet34", "smp-unet-efficientnet_b0", "smp-unet-mobilenet_v2",
    "smp-unetplusplus-resnet34", "smp-fpn-resnet34", "smp-pspnet-resnet34",
    "smp-deeplabv3-resnet34", "smp-deeplabv3plus-resnet34", "smp-linknet-resnet34",
    "smp-manet-resnet34", "smp-pan-mobilenet_v2", "smp-upernet-resnet34",
    "smp-segformer-mit_b0",
]


class TestSmpConformance(ModelConformance):
    """Output sizes, backward, eval, seeded init, state dict, encode, and learning on the
    quick profile: in the default run (so in CI), as issue 22 asks of the library models."""

    model_names = SMP_MODELS
    learning_is_slow = False


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve a host or open a connection fails the test: a download of
    weights (torch.hub, Hugging Face) has to do one of these first."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_the_registered_models_are_exactly_the_curated_set(registry):
    assert registry.names("models", "smp-*") == sorted(SMP_MODELS)
    assert len(SMP_MODELS) >= 10
    for name in SMP_MODELS:
        assert registry.owner("models", name) == "smp"
    assert not [p for p in registry.problems if "smp" in p]  # no clash with the zoo's names


def test_every_decoder_of_smp_is_registered(registry):
    import segmentation_models_pytorch as smp

    from jmedbench_smp.models import DECODERS

    decoders = {d.smp_class for d in DECODERS.values()}
    # every model class smp exports (Unet, FPN, ...) but DPT, which cannot pass the learning
    # check (see DECODERS)
    assert decoders == {cls.__name__ for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()} - {"DPT"}
    used = {name.split("-")[1] for name in SMP_MODELS}
    assert used == set(DECODERS)


def test_width_is_not_an_option(registry):
    """The encoder is a fixed design: the profiles' width never reaches these factories."""
    for name in SMP_MODELS:
        assert "width" not in model_kwargs(registry.model(name), 64), name


def test_another_encoder_by_name(registry):
    spec = registry.model("smp-fpn-resnet34")
    torch.manual_seed(0)
    model = spec.factory(encoder_name="resnet18").eval()
    assert model._hub_mixin_config["encoder_name"] == "resnet18"
    timm_model = spec.factory(encoder_name="tu-resnet18").eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 64, 96)).shape == (1, 3, 64, 96)
        assert timm_model(torch.zeros(1, 1, 64, 96)).shape == (1, 3, 64, 96)


def test_an_unknown_encoder_is_one_line_naming_the_option(registry):
    factory = registry.model("smp-unet-resnet34").factory
    with pytest.raises(UserError) as info:
        factory(encoder_name="resnet35")
    message = str(info.value)
    assert "\n" not in message
    assert "[model.smp-unet-resnet34] option encoder_name 'resnet35'" in message
    assert "did you mean" in message and "'resnet34'" in message
    with pytest.raises(UserError, match=r"timm has no model 'resnet_35'"):
        factory(encoder_name="tu-resnet_35")
    with pytest.raises(UserError, match="expected an encoder name"):
        factory(encoder_name=34)


def test_a_decoder_smp_cannot_put_on_an_encoder_is_one_line(registry):
    # smp's U-Net++ refuses transformer encoders (ValueError inside smp)
    with pytest.raises(UserError, match=r"smp cannot build UnetPlusPlus on it"):
        registry.model("smp-unetplusplus-resnet34").factory(encoder_name="mit_b0")


def test_an_unknown_encoder_through_the_cli(tmp_path, cli_in_process):
    config = tmp_path / "encoder.toml"
    config.write_text('[model.smp-unet-resnet34]\nencoder_name = "resnet35"\n')
    result = cli_in_process("run", "--model", "smp-unet-resnet34", "--profile", "quick",
                            "--steps", "1", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "option encoder_name 'resnet35' is not an smp encoder" in result.stderr


def test_a_size_the_encoder_cannot_take_is_one_line(registry):
    model = build(registry.model("smp-fpn-resnet34"), seed=0).eval()
    with pytest.raises(UserError) as info, torch.no_grad():
        model(torch.zeros(1, 1, 48, 64))
    assert str(info.value) == ("model 'smp-fpn-resnet34': input 48x64: height and width must "
                               "be multiples of 32 (its encoder's output stride); the nearest "
                               "size that fits is 64x64")
    with pytest.raises(UserError, match="multiples of 32"):
        model.encode(torch.zeros(1, 1, 48, 64))


def test_the_unet_takes_any_size_it_declares(registry):
    """smp's U-Net interpolates to each skip: the spec declares any size from 32 on."""
    spec = registry.model("smp-unet-resnet34")
    assert (spec.input_multiple, spec.min_size) == (1, 32)
    model = build(spec, seed=0).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 37, 45)).shape == (1, 3, 37, 45)


# Deepest encoder map for a 64x96 input: (channels, reduction).
ENCODER_SHAPES = {
    "smp-unet-resnet34": (512, 32), "smp-unet-efficientnet_b0": (320, 32),
    "smp-unet-mobilenet_v2": (1280, 32), "smp-pspnet-resnet34": (128, 8),
    "smp-deeplabv3-resnet34": (512, 8), "smp-deeplabv3plus-resnet34": (512, 16),
    "smp-segformer-mit_b0": (256, 32),
}


@pytest.mark.parametrize("name", sorted(ENCODER_SHAPES))
def test_encode_returns_the_deepest_encoder_map(registry, name):
    channels, reduction = ENCODER_SHAPES[name]
    model = build(registry.model(name), seed=0).eval()
    with torch.no_grad():
        feats = model.encode(torch.zeros(1, 1, 64, 96))
    assert feats.shape == (1, channels, 64 // reduction, 96 // reduction)
    assert feats.shape[1] == model.encoder_channels


def test_every_model_builds_offline_randomly_initialised_without_unused_modules(
        registry, no_network):
    """One build per model (each costs seconds) checks three things:

    - encoder_weights=None reaches smp (its hub mixin records the arguments it was built with),
      and building does not touch the network;
    - parameters smp builds and never uses are gone: found by the hooked forward at build time,
      and equal to the list each curated model keeps for `jmedbench list` (which builds on the
      meta device, where no forward runs).
    """
    from jmedbench_smp.models import CURATED

    for entry in CURATED:
        model = build(registry.model(entry.name), seed=0)
        config = model._hub_mixin_config
        assert (config["encoder_weights"], config["in_channels"], config["classes"]) == \
            (None, 1, 3), entry.name
        assert model.jmedbench_dropped == list(entry.unused), entry.name
    assert {e.name: e.unused for e in CURATED if e.unused} == {
        "smp-pspnet-resnet34": ("layer3", "layer4")}
    with torch.device("meta"):
        listed = registry.model("smp-pspnet-resnet34").factory()
    assert sum(p.numel() for p in listed.parameters()) == 1_504_163  # without layer3/layer4


def test_weights_saved_from_plain_smp_load_with_weights(registry, tmp_path):
    """A state dict of smp's own Unet (as a user trained or converted it) loads strictly into
    smp-unet-resnet34 through jmedbench.weights, and gives the same logits."""
    import segmentation_models_pytorch as smp
    from safetensors.torch import save_file

    from jmedbench.weights import load_weights

    torch.manual_seed(1)
    plain = smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=3).eval()
    path = tmp_path / "unet.safetensors"
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, str(path))
    ours = build(registry.model("smp-unet-resnet34"), seed=0)
    load_weights(ours, path, "smp-unet-resnet34").eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), plain(x))


def test_listed_with_parameter_counts(cli_in_process):
    result = cli_in_process("list", "models", "smp-*", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert sorted(rows) == sorted(SMP_MODELS)
    # ResNet-34 U-Net: smp's published 24.4 M (with 3 classes and a 1-channel stem)
    assert rows["smp-unet-resnet34"]["params"] == pytest.approx(24.43e6, rel=0.01)
    assert all(row["params"] and row["params"] > 1e5 for row in rows.values())


def test_the_bench_matrix_takes_the_library_patterns(registry):
    """`jmedbench bench --models 'smp-*,monai-*'` expands to every library model that takes the
    profile's slices, and says which it skips (expanded only: no run starts)."""
    from jmedbench.engine.bench import expand_matrix

    matrix = expand_matrix(registry, "smp-*,monai-*", "baseline", "phantom", "0", "quick")
    models = [entry.model for entry in matrix.entries]
    fits = [n for n in SMP_MODELS if n != "smp-pan-mobilenet_v2"]  # PAN: sides >= 128 only
    assert models[:len(fits)] == sorted(fits)
    assert set(models) == set(fits) | set(registry.names("models", "monai-*"))
    assert [note.split("'")[1] for note in matrix.notes] == ["smp-pan-mobilenet_v2"]
    at_128 = expand_matrix(registry, "smp-*,monai-*", "baseline", "phantom", "0", "default")
    assert {e.model for e in at_128.entries} >= set(SMP_MODELS) and not at_128.notes


def test_profile_refuses_a_size_the_spec_does_not_allow(cli_in_process):
    result = cli_in_process("profile", "--model", "smp-pan-mobilenet_v2", "--size", "64")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "at least 128" in result.stderr


def test_loading_the_plugins_imports_neither_library():
    """smp takes seconds to import and MONAI too: the registry (every command starts with it)
    must not pay for them; a fresh interpreter shows they stay unimported."""
    from conftest import fresh_interpreter_output

    code = ("import sys\nfrom jmedbench.registry import get_registry\n"
            "names = get_registry().names('models')\n"
            "assert 'smp-unet-resnet34' in names and 'monai-unet' in names\n"
            "print(sorted(m for m in ('segmentation_models_pytorch', 'monai') "
            "if m in sys.modules))")
    assert fresh_interpreter_output(code).strip() == "[]"


@pytest.mark.parametrize("zoo_name, smp_name", [("unet-resnet34", "smp-unet-resnet34"),
                                                ("unet-efficientnet_b0",
                                                 "smp-unet-efficientnet_b0")])
def test_the_zoo_timm_unets_are_the_same_network_as_smp(registry, zoo_name, smp_name):
    """docs/model-libraries.md says which name the leaderboard keeps because these pairs are one
    network: the same tensors in the same order, and with the same weights the same logits.
    If either side changes, this fails and the decision there needs another look."""
    zoo = build(registry.model(zoo_name), seed=0).eval()
    lib = build(registry.model(smp_name), seed=1).eval()
    zoo_state, lib_state = zoo.state_dict(), lib.state_dict()
    assert [v.shape for v in zoo_state.values()] == [v.shape for v in lib_state.values()]
    lib.load_state_dict(dict(zip(lib_state, zoo_state.values())), strict=True)
    x = torch.randn(2, 1, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(zoo(x), lib(x))


def test_a_run_of_an_smp_model_records_the_library_version():
    import importlib.metadata as md

    from jmedbench.provenance import model_provenance
    from jmedbench.registry import get_registry

    recorded = model_provenance(get_registry(), "smp-unet-resnet34")
    assert recorded["plugin"] == "smp"
    assert recorded["libraries"] == {"segmentation-models-pytorch":
                                     md.version("segmentation-models-pytorch"),
                                     "timm": md.version("timm")}
