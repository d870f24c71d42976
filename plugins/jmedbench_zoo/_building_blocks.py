"""Layers shared by the context, real-time, high-resolution and transformer families: a
conv-norm-activation unit and a timm encoder whose width follows the ``width`` option.

Private module (leading underscore): the zoo's collector skips it, it defines no models.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBNAct(nn.Sequential):
    """Conv -> BatchNorm -> activation with "same" padding for odd kernels."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1,
                 groups: int = 1, act: type[nn.Module] | None = nn.ReLU) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, padding=dilation * (kernel - 1) // 2,
                      dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout)]
        if act is not None:
            if act in (nn.ReLU, nn.ReLU6):
                layers.append(act(inplace=True))
            elif act is nn.PReLU:
                layers.append(nn.PReLU(cout))  # one slope per channel, as CGNet/ESPNet use
            else:
                layers.append(act())
        super().__init__(*layers)


class PooledConv(nn.Module):
    """Global average pooling -> 1x1 conv -> activation, broadcast back to the input size.

    No BatchNorm after the pooling: a BatchNorm over a 1x1 map has a single value per channel
    with batch size 1 and fails in training mode, so the biased conv replaces it (the papers
    use BatchNorm here with large batches)."""

    def __init__(self, cin: int, cout: int, act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=True)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(F.adaptive_avg_pool2d(x, 1)))
        return y.expand(-1, -1, *x.shape[-2:])


def upsample_to(x: torch.Tensor, ref: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    size = ref if isinstance(ref, tuple) else tuple(ref.shape[-2:])
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def resnet_widths(width: int) -> tuple[int, int, int, int]:
    """ResNet stage channels for a base width: (w, 2w, 4w, 8w); width 64 is the standard net."""
    return (width, 2 * width, 4 * width, 8 * width)


def timm_encoder(name: str, in_channels: int, width: int, out_indices: tuple[int, ...],
                 strides: tuple[int, ...], output_stride: int = 32) -> nn.Module:
    """A timm backbone with ``features_only=True`` and random initialisation (never downloads).

    For timm ResNets (resnet18, resnet34d, resnet50, ...) the stage channels follow ``width`` (``resnet_widths``; the "d" variants'
    deep stem gets width/2 channels, so width 64 reproduces resnet18d/resnet34d exactly); any
    other timm model that supports ``features_only`` is built at its own size. Only the stages
    up to the deepest requested index are kept, so every parameter is used. ``strides`` are
    the feature strides the model's decoder is built for; an encoder whose features at
    ``out_indices`` have other strides is refused (ValueError, one line).
    """
    import timm  # lazily: importing timm (and torchvision) costs seconds at every command

    if not timm.is_model(name):
        raise ValueError(f"encoder '{name}' is not a timm model (e.g. resnet18d, resnet34d, "
                         f"mobilenetv3_large_100, efficientnet_b0)")
    kwargs: dict = {}
    if re.fullmatch(r"resnet\d+[a-z]*", name):   # timm's ResNet class (not ResNetV2)
        kwargs["channels"] = resnet_widths(width)
        kwargs["stem_width"] = max(4, width // 2)
    if output_stride != 32:
        kwargs["output_stride"] = output_stride
    model = timm.create_model(name, pretrained=False, features_only=True, in_chans=in_channels,
                              out_indices=out_indices, **kwargs)
    # timm's EfficientNet/MobileNet feature models build every block even when the deepest
    # requested feature comes earlier; drop the unused tail so each parameter gets a gradient.
    last = model.feature_info.module_name()[-1]
    if last.startswith("blocks.") and isinstance(getattr(model, "blocks", None), nn.Sequential):
        model.blocks = model.blocks[:int(last.split(".")[1]) + 1]
    got = tuple(model.feature_info.reduction())
    if got != tuple(strides):
        raise ValueError(f"encoder '{name}' gives features at strides {list(got)} for "
                         f"out_indices {list(out_indices)}; this model needs {list(strides)}")
    return model
