"""HRNet (HRNetV2 segmentation head): parallel branches at 1/4, 1/8, 1/16 and 1/32 resolution
that keep exchanging information, so a high-resolution representation survives to the end.

A compact from-scratch implementation (timm's HRNets cannot change width): branch channels
(w, 2w, 4w, 8w), the stage layout of HRNetV2-W18-Small-v2 (stage 1: two bottlenecks; stages
2/3/4: 1/3/2 modules of two basic blocks per branch). Width 18 is the W18 model.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from jmedbench.specs import ModelSpec

from ._building_blocks import ConvBNAct, upsample_to


class BasicBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(channels, channels, 3),
                                  ConvBNAct(channels, channels, 3, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.body = nn.Sequential(ConvBNAct(cin, planes, 1), ConvBNAct(planes, planes, 3),
                                  ConvBNAct(planes, cout, 1, act=None))
        self.shortcut = nn.Identity() if cin == cout else ConvBNAct(cin, cout, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.shortcut(x) + self.body(x))


class FuseLayer(nn.Module):
    """Every output branch i sums all input branches brought to its resolution: 1x1 conv +
    upsampling from lower resolutions, chains of stride-2 3x3 convs from higher ones."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.paths = nn.ModuleList()
        for i, ci in enumerate(channels):
            row = nn.ModuleList()
            for j, cj in enumerate(channels):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:
                    row.append(ConvBNAct(cj, ci, 1, act=None))
                else:
                    steps = [ConvBNAct(cj, cj, 3, stride=2) for _ in range(i - j - 1)]
                    steps.append(ConvBNAct(cj, ci, 3, stride=2, act=None))
                    row.append(nn.Sequential(*steps))
            self.paths.append(row)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for i, row in enumerate(self.paths):
            total = xs[i]
            for j, path in enumerate(row):
                if j != i:
                    total = total + upsample_to(path(xs[j]), xs[i])
            outs.append(torch.relu(total))
        return outs


class HighResolutionModule(nn.Module):
    def __init__(self, channels: list[int], blocks: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c) for _ in range(blocks))) for c in channels)
        self.fuse = FuseLayer(channels)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.fuse([branch(x) for branch, x in zip(self.branches, xs)])


class HRNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 18,
                 modules_per_stage: tuple[int, int, int] = (1, 3, 2), blocks: int = 2) -> None:
        super().__init__()
        stem = max(8, round(64 * width / 18))   # the paper's 64 at width 18
        self.stem = nn.Sequential(ConvBNAct(in_channels, stem, 3, stride=2),
                                  ConvBNAct(stem, stem, 3, stride=2))
        planes = stem
        self.stage1 = nn.Sequential(Bottleneck(stem, planes), Bottleneck(4 * planes, planes))
        branch_channels = [width * 2 ** i for i in range(4)]
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        previous = [4 * planes]
        for n_branches, n_modules in zip((2, 3, 4), modules_per_stage):
            current = branch_channels[:n_branches]
            # keep existing branches (adapting channels where needed), add one at half resolution
            transition = nn.ModuleList()
            for i in range(n_branches):
                if i >= len(previous):
                    transition.append(ConvBNAct(previous[-1], current[i], 3, stride=2))
                elif previous[i] != current[i]:
                    transition.append(ConvBNAct(previous[i], current[i], 3))
                else:
                    transition.append(nn.Identity())
            self.transitions.append(transition)
            self.stages.append(nn.Sequential(*(HighResolutionModule(current, blocks)
                                               for _ in range(n_modules))))
            previous = current
        self.encoder_channels = branch_channels[-1]
        total = sum(branch_channels)
        self.head = nn.Sequential(ConvBNAct(total, total, 1), nn.Conv2d(total, num_classes, 1))

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        xs = [self.stage1(self.stem(x))]
        for transition, stage in zip(self.transitions, self.stages):
            xs = [t(xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(transition)]
            xs = stage(xs)
        return xs

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Lowest-resolution branch after the last stage, (B, 8*width, H/32, W/32)."""
        return self.branches(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = self.branches(x)
        merged = torch.cat([xs[0]] + [upsample_to(t, xs[0]) for t in xs[1:]], 1)
        return upsample_to(self.head(merged), x)


MODELS = [
    ModelSpec("hrnet", HRNet, family="high-resolution",
              description="HRNetV2 (W18-Small-v2 layout): four parallel resolution branches "
                          "with repeated multi-scale fusion, concatenated at 1/4",
              citation="Wang, Sun, Cheng, Jiang, Deng, Zhao, Liu, Mu, Tan, Wang, Liu, Xiao. "
                       "Deep High-Resolution Representation Learning for Visual Recognition. "
                       "IEEE TPAMI 2020",
              tags=("high-resolution", "from-scratch"), input_multiple=32, min_size=32,
              has_encoder=True, defaults={"width": 18},
              search_space={"width": ("categorical", [12, 18, 32])}),
]
