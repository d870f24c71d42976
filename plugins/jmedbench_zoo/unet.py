"""UNet (Ronneberger et al. 2015) as the source paper uses it: four down-samplings, bilinear
up-sampling, 512 channels at the fourth stage for width 64 (channels w, 2w, 4w, 8w, 8w)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from jmedbench.specs import ModelSpec


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True))


class Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv = DoubleConv(cin + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__()
        c = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        self.stem = DoubleConv(in_channels, c[0])
        self.down = nn.ModuleList(DoubleConv(c[i], c[i + 1]) for i in range(4))
        self.up = nn.ModuleList([Up(c[4], c[3], c[2]), Up(c[2], c[2], c[1]),
                                 Up(c[1], c[1], c[0]), Up(c[0], c[0], c[0])])
        self.head = nn.Conv2d(c[0], num_classes, 1)
        self.encoder_channels = c[4]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        return skips

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deepest encoder stage (after the 4th down-sampling): (B, 8*width, H/16, W/16)."""
        return self.features(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = self.features(x)
        y = skips[-1]
        for block, skip in zip(self.up, reversed(skips[:-1])):
            y = block(y, skip)
        return self.head(y)


MODELS = [
    ModelSpec("unet", UNet, family="unet",
              description="Classic UNet, 4 down-samplings, bilinear decoder (the paper's model)",
              citation="Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical "
                       "Image Segmentation. MICCAI 2015",
              tags=("unet", "paper"), input_multiple=16, min_size=32, has_encoder=True,
              reference=True,  # the mCE reference: every robustness run is compared with it
              defaults={"width": 64},
              search_space={"width": ("categorical", [16, 32, 64])}),
]
