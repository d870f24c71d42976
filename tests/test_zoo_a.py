"""The UNet variants, classic encoder-decoders and timm-backbone UNets of the zoo: the
conformance kit for each, plus what the kit cannot know (paper parameter counts, encoder
shapes, the FCN up-sampler, deep supervision, parameters that never learn)."""

from __future__ import annotations

import pytest
import torch

from jmedbench.testing import ModelConformance, build, model_kwargs

UNET_VARIANTS = ["attention-unet", "unet-plusplus", "unet-3plus", "r2-unet", "res-unet",
                 "dense-unet", "multires-unet"]
ENCODER_DECODERS = ["fcn8s", "segnet", "linknet", "enet", "erfnet"]
TIMM_UNETS = ["unet-resnet34", "unet-efficientnet_b0"]
MODEL_NAMES = UNET_VARIANTS + ENCODER_DECODERS + TIMM_UNETS


class TestZooAConformance(ModelConformance):
    """Output sizes, backward, eval, seeded init, state dict, encode; learning (slow)."""

    model_names = MODEL_NAMES


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Parameter counts the papers print, for the channel plan they used (width 64 where the model
# takes a width). Ours differ only by the class count (3 here) and by rounding.
PAPER_PARAMS = {
    "unet-3plus": 26.97e6,  # Huang et al. 2020, Table 1 (VGG-16 plan)
    "linknet": 11.5e6,      # Chaurasia & Culurciello 2017, Table 2
    "enet": 0.37e6,         # Paszke et al. 2016, Table 3
}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_parameter_count_matches_the_paper(registry, name):
    spec = registry.model(name)
    model = build(spec, width=64, seed=0)
    assert n_params(model) == pytest.approx(PAPER_PARAMS[name], rel=0.02)


def test_width_is_the_base_channel_count(registry):
    """Doubling width multiplies a plain convolutional model's parameters by about 4."""
    for name in ["attention-unet", "unet-3plus", "segnet", "linknet", "res-unet"]:
        spec = registry.model(name)
        small, large = n_params(build(spec, 8)), n_params(build(spec, 16))
        assert 3.5 < large / small < 4.1, name


# Deepest encoder stage per model at width 8 for a 64x96 input: (channels, reduction).
ENCODER_SHAPES = {
    "attention-unet": (128, 16), "unet-plusplus": (128, 16), "unet-3plus": (128, 16),
    "r2-unet": (128, 16), "res-unet": (64, 8), "dense-unet": (None, 32),
    "multires-unet": (None, 16), "fcn8s": (128, 32), "segnet": (64, 32), "linknet": (64, 32),
    "enet": (128, 8), "erfnet": (128, 8), "unet-resnet34": (512, 32),
    "unet-efficientnet_b0": (320, 32),
}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_encode_returns_the_documented_stage(registry, name):
    channels, reduction = ENCODER_SHAPES[name]
    model = build(registry.model(name), 8, seed=0).eval()
    with torch.no_grad():
        feats = model.encode(torch.zeros(1, 1, 64, 96))
    assert feats.shape[-2:] == (64 // reduction, 96 // reduction)
    assert feats.shape[1] == model.encoder_channels
    if channels is not None:
        assert feats.shape[1] == channels


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_parameter_learns_within_two_steps(registry, name):
    """Stronger than 'gets a gradient': no parameter keeps an all-zero gradient. A zero
    gradient at step 1 is allowed only when an initialisation explains it (timm's ResNet zeroes
    the last BatchNorm scale of each block, which silences its branch until the first step)."""
    torch.manual_seed(0)
    model = build(registry.model(name), 8, seed=0).train()
    x = torch.randn(2, 1, 32, 32)  # every model here takes 32x32
    target = torch.randint(0, 3, (2, 32, 32))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    silent = None
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), target).backward()
        silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
        if not silent:
            break
        opt.step()
    assert not silent, f"{name}: parameters that never get a gradient: {silent[:8]}"


def test_fcn_upsampler_starts_bilinear():
    """FCN's learnable x2 up-sampling is initialised to bilinear interpolation: a constant map
    stays constant away from the border."""
    from jmedbench_zoo.encoder_decoders import bilinear_kernel

    up = torch.nn.ConvTranspose2d(3, 3, 4, 2, 1, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(3, 4))
        out = up(torch.full((1, 3, 5, 5), 2.0))
    assert out.shape == (1, 3, 10, 10)
    assert torch.allclose(out[..., 1:-1, 1:-1], torch.tensor(2.0))
    # a ramp stays linear: bilinear interpolation reproduces linear functions
    ramp = torch.arange(5.0).repeat(5, 1)[None, None].expand(1, 3, 5, 5)
    with torch.no_grad():
        r = up(ramp.contiguous())[0, 0, 4, 1:-1]
    assert torch.allclose(r.diff(), torch.tensor(0.5))


def test_unet_plusplus_deep_supervision_uses_every_head(registry):
    spec = registry.model("unet-plusplus")
    torch.manual_seed(0)
    model = spec.factory(width=8, deep_supervision=True).train()
    out = model(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 3, 64, 64)
    out.mean().backward()
    assert len(model.heads) == 4
    assert all(h.weight.grad is not None and h.weight.grad.any() for h in model.heads)


def test_segnet_decoder_uses_pooling_indices(registry):
    """SegNet up-samples by max-unpooling: right after unpooling the first decoder stage sees
    exactly one non-zero value per 2x2 window (at the argmax), not an interpolated map."""
    model = build(registry.model("segnet"), 8, seed=0).eval()
    seen = {}
    model.dec[4].register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    with torch.no_grad():
        model(torch.randn(1, 1, 64, 64))
    windows = (seen["x"] != 0).float().unfold(2, 2, 2).unfold(3, 2, 2).sum((-1, -2))
    assert windows.max() == 1


@pytest.mark.parametrize("name", ["attention-unet", "fcn8s", "linknet", "dense-unet"])
def test_a_bad_width_is_refused(registry, name):
    with pytest.raises(ValueError, match="width"):
        registry.model(name).factory(width=0)


def test_every_model_is_listed_with_a_citation(registry):
    specs = {s.name: s for s in registry.specs("models")}
    for name in MODEL_NAMES:
        assert name in specs, name
        assert specs[name].citation and specs[name].has_encoder
        assert registry.owner("models", name, "torch") == "zoo"


def test_models_without_width_ignore_the_profile_width(registry):
    """ENet, ERFNet and the timm UNets keep their paper/backbone size under every profile: the
    engine passes `width` only to factories that accept it."""
    for name in ["enet", "erfnet"] + TIMM_UNETS:
        assert "width" not in model_kwargs(registry.model(name), 64), name


def test_loading_the_zoo_imports_no_timm_until_a_timm_model_is_built():
    """timm brings torchvision and torch._dynamo: seconds that every command (``list
    strategies``, ``show``, ...) would pay at start-up. A fresh interpreter loads every plugin
    without them; building a model on a timm backbone then imports timm."""
    from conftest import fresh_interpreter_output

    code = ("import sys\nfrom jmedbench.registry import get_registry\n"
            "registry = get_registry()\n"
            "print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))\n"
            "registry.model('pspnet').factory(1, 3, width=8)\n"
            "print('timm' in sys.modules)")
    assert fresh_interpreter_output(code).split() == ["[]", "True"]
