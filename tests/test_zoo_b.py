"""Zoo, part B: context, real-time, high-resolution and transformer families.

Every model runs the conformance kit (jmedbench.testing): output sizes, gradients, eval mode,
seeded init, state-dict round trip, encoder; the learning check is marked slow. The tests
below it pin what the kit cannot know: the window masking of Swin, the position-embedding
resize, the paper sizes some widths reproduce, and the options the specs advertise.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from jmedbench.testing import ModelConformance

CONTEXT = ["pspnet", "deeplabv3", "deeplabv3plus", "danet", "ocrnet", "cenet"]
REALTIME = ["bisenet", "fastscnn", "cgnet", "espnet"]
HIGH_RESOLUTION = ["hrnet"]
TRANSFORMERS = ["transunet", "unetr", "swinunet", "segformer"]
ZOO_B = CONTEXT + REALTIME + HIGH_RESOLUTION + TRANSFORMERS


class TestZooBConformance(ModelConformance):
    model_names = ZOO_B


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(registry, name: str, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return registry.model(name).factory(in_channels=1, num_classes=3, **options)


def test_family_modules_register_every_model(registry):
    families = {"context": CONTEXT, "realtime": REALTIME, "high-resolution": HIGH_RESOLUTION,
                "transformer": TRANSFORMERS}
    for family, names in families.items():
        for name in names:
            spec = registry.model(name)
            assert spec.family == family
            assert spec.has_encoder
            assert "width" in inspect.signature(spec.factory).parameters
            assert set(spec.search_space) <= set(inspect.signature(spec.factory).parameters)


@pytest.mark.parametrize("name", ZOO_B)
def test_width_scales_the_model(registry, name):
    # profiles pass width 8 / 16 / 64: a model that ignored it would cost the same everywhere
    assert n_params(build(registry, name, width=16)) > 2 * n_params(build(registry, name, width=8))


@pytest.mark.parametrize("name", ZOO_B)
def test_trains_with_batch_one(registry, name):
    # no BatchNorm after global pooling: a single image per step must work in train mode
    model = build(registry, name, width=8).train()
    out = model(torch.randn(1, 1, 64, 64))
    out.mean().backward()
    assert out.shape == (1, 3, 64, 64)


@pytest.mark.parametrize("name, width, paper_params, source", [
    # the width at which a model is the paper's own network, and the paper's parameter count
    ("segformer", 32, 3.8e6, "SegFormer-B0 (MiT-b0), Xie et al. 2021, Table 1"),
    ("swinunet", 48, 27.17e6, "Swin-Unet, Cao et al. 2022"),
    ("hrnet", 18, 3.9e6, "HRNetV2-W18-Small-v2, Wang et al. 2020"),
    ("fastscnn", 32, 1.11e6, "Fast-SCNN, Poudel et al. 2019"),
    ("cgnet", 32, 0.5e6, "CGNet M=3 N=21, Wu et al."),
    ("espnet", 16, 0.36e6, "ESPNet, Mehta et al. 2018"),
])
def test_paper_widths_give_the_paper_sizes(registry, name, width, paper_params, source):
    # within 5%: the papers round, and their heads predict 19 Cityscapes classes, not 3
    assert n_params(build(registry, name, width=width)) == pytest.approx(paper_params, rel=0.05), source


def test_resnet_backbones_follow_width(registry):
    # width 64 is the standard ResNet-18-D: its stages have 64..512 channels
    model = build(registry, "pspnet", width=64)
    assert model.backbone.feature_info.channels() == [512]
    model = build(registry, "cenet", width=16)
    assert model.backbone.feature_info.channels() == [16, 32, 64, 128]


@pytest.mark.parametrize("name, encoder", [("deeplabv3plus", "mobilenetv3_large_100"),
                                           ("transunet", "efficientnet_b0")])
def test_other_timm_encoders(registry, name, encoder):
    model = build(registry, name, width=8, encoder=encoder)
    out = model(torch.randn(2, 1, 64, 96))
    out.mean().backward()
    assert out.shape == (2, 3, 64, 96)
    assert all(p.grad is not None for p in model.parameters())  # unused tail blocks dropped


def test_encoder_with_wrong_strides_is_refused(registry):
    # convnext's first feature is at stride 4; TransUNet's decoder needs stride 2 first
    with pytest.raises(ValueError, match="strides"):
        build(registry, "transunet", width=8, encoder="convnext_atto")


def test_unknown_encoder_is_one_clear_error(registry):
    with pytest.raises(ValueError, match="not a timm model"):
        build(registry, "pspnet", width=8, encoder="resnet18x_typo")


def test_deeplab_output_stride_option(registry):
    model = build(registry, "deeplabv3", width=8, output_stride=8)
    assert model.encode(torch.randn(1, 1, 64, 64)).shape[-2:] == (8, 8)
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 3, 64, 64)


def test_unetr_rejects_depth_not_multiple_of_four(registry):
    with pytest.raises(ValueError, match="multiple of 4"):
        build(registry, "unetr", width=8, depth=6)


# -- Swin windows: padding and shifting are masked exactly ---------------------------------

def swin_block(shifted: bool):
    from jmedbench_zoo.transformers import SwinBlock
    torch.manual_seed(0)
    return SwinBlock(dim=16, heads=2, window=4, shifted=shifted).eval()


def test_swin_padding_is_masked():
    # 6x6 map, window 4: the bottom-right window holds 2x2 real tokens and 12 padded ones.
    # If padding is masked, those 4 tokens see only each other, exactly as the same block
    # applied to the 2x2 crop alone (window clamped to 2; same relative-position biases).
    block = swin_block(shifted=False)
    x = torch.randn(1, 6, 6, 16)
    with torch.no_grad():
        full = block(x)
        crop = block(x[:, 4:6, 4:6].contiguous())
    torch.testing.assert_close(full[:, 4:6, 4:6], crop, rtol=1e-5, atol=1e-5)


def test_swin_shifted_windows_do_not_mix_wrapped_tokens():
    # 8x8 map, window 4, shift 2: the window that holds rows/cols {6,7,0,1} after the cyclic
    # shift must split into regions; token block {0,1}x{0,1} sees only itself.
    block = swin_block(shifted=True)
    x = torch.randn(1, 8, 8, 16)
    with torch.no_grad():
        full = block(x)
        crop = block(x[:, 0:2, 0:2].contiguous())
    torch.testing.assert_close(full[:, 0:2, 0:2], crop, rtol=1e-5, atol=1e-5)


def test_swin_window_is_local():
    # changing one token changes only the outputs of its own (unshifted) window
    block = swin_block(shifted=False)
    x = torch.randn(1, 8, 8, 16)
    y = x.clone()
    y[0, 1, 1] = torch.randn(16) * 3   # not a constant shift, which LayerNorm would remove
    with torch.no_grad():
        diff = (block(x) - block(y)).abs().sum(-1)[0]
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[0:4, 0:4] = True
    assert (diff[inside] > 1e-5).all()
    assert (diff[~inside] == 0).all()


def test_position_embedding_resizes_to_the_token_grid():
    from jmedbench_zoo.transformers import PositionEmbedding
    torch.manual_seed(0)
    pe = PositionEmbedding(dim=4, grid=8)
    tokens = torch.zeros(1, 8 * 8, 4)
    same = pe(tokens, 8, 8)
    torch.testing.assert_close(same, pe.table.flatten(2).transpose(1, 2))
    resized = pe(torch.zeros(1, 4 * 6, 4), 4, 6)
    expected = F.interpolate(pe.table, size=(4, 6), mode="bilinear", align_corners=False)
    torch.testing.assert_close(resized, expected.flatten(2).transpose(1, 2))
