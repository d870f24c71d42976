"""UNet in Jittor: :mod:`jmedbench_zoo.unet` layer for layer."""

from __future__ import annotations

import jittor as jt
from jittor import nn

from jmedbench_jittor.layers import DoubleConv, max_pool, resize_bilinear


class Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv = DoubleConv(cin + cskip, cout)

    def execute(self, x, skip):
        x = resize_bilinear(x, skip.shape[-2:])
        return self.conv(jt.concat([skip, x], dim=1))


class UNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__()
        c = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        self.stem = DoubleConv(in_channels, c[0])
        self.down = nn.ModuleList([DoubleConv(c[i], c[i + 1]) for i in range(4)])
        self.up = nn.ModuleList([Up(c[4], c[3], c[2]), Up(c[2], c[2], c[1]),
                                 Up(c[1], c[1], c[0]), Up(c[0], c[0], c[0])])
        self.head = nn.Conv2d(c[0], num_classes, 1)
        self.encoder_channels = c[4]

    def features(self, x):
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(max_pool(skips[-1], 2)))
        return skips

    def encode(self, x):
        return self.features(x)[-1]

    def execute(self, x):
        skips = self.features(x)
        y = skips[-1]
        for block, skip in zip(self.up, reversed(skips[:-1])):
            y = block(y, skip)
        return self.head(y)
