"""The plugin module named by the entry point: one hook returning one ModelSpec."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from jmedbench.hookspecs import hookimpl
from jmedbench.specs import ModelSpec


class SeparableConv(nn.Sequential):
    """3x3 depthwise + 1x1 pointwise convolution, BatchNorm, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class DSCUNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 16) -> None:
        super().__init__()
        c = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True))
        self.down = nn.ModuleList(SeparableConv(c[i], c[i + 1]) for i in range(3))
        self.up = nn.ModuleList(SeparableConv(c[i + 1] + c[i], c[i]) for i in reversed(range(3)))
        self.head = nn.Conv2d(c[0], num_classes, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._encode(x)[-1]

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        return skips

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = self._encode(x)
        y = skips.pop()
        for block in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([skip, y], dim=1))
        return self.head(y)


@hookimpl
def jmedbench_models():
    return [ModelSpec(
        "dsc-unet", DSCUNet, family="unet",
        description="UNet with depthwise-separable convolutions (example outside plugin)",
        citation="Howard et al. MobileNets: Efficient Convolutional Neural Networks for Mobile "
                 "Vision Applications. arXiv:1704.04861, 2017",
        tags=("example", "lightweight"), input_multiple=8, min_size=16, has_encoder=True,
        defaults={"width": 16})]
