"""Real-time models: few parameters and FLOPs, designed for fast inference.

BiSeNet's context path is a timm ResNet-18-D whose channels follow ``width``; Fast-SCNN,
CGNet and ESPNet are small from-scratch networks, built here as in their papers with channels
scaled by ``width`` (the paper's own channels at each model's default width). Auxiliary heads
of the papers are left out (the trainer takes one output), and BatchNorm after global pooling
is replaced by a biased conv so that training works with batch size 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from jmedbench.specs import ModelSpec

from ._building_blocks import ConvBNAct, PooledConv, timm_encoder, upsample_to


def scaled(channels: int, width: int, reference: int, minimum: int = 4) -> int:
    """``channels`` of the paper (at ``reference`` width) scaled to ``width``."""
    return max(minimum, round(channels * width / reference))


# -- BiSeNet ---------------------------------------------------------------------------------

class AttentionRefinement(nn.Module):
    """ARM: 3x3 conv, then a channel attention vector from global context."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(cin, cout, 3)
        self.attention = PooledConv(cout, cout, act=nn.Sigmoid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * self.attention(y)


class FeatureFusion(nn.Module):
    """FFM: concatenate spatial and context paths, reweight channels, add back."""

    def __init__(self, cin: int, cout: int, reduction: int = 4) -> None:
        super().__init__()
        self.conv = ConvBNAct(cin, cout, 1)
        self.squeeze = nn.Conv2d(cout, max(1, cout // reduction), 1)
        self.excite = nn.Conv2d(max(1, cout // reduction), cout, 1)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        y = self.conv(torch.cat([spatial, context], 1))
        attention = torch.sigmoid(self.excite(F.relu(self.squeeze(F.adaptive_avg_pool2d(y, 1)))))
        return y + y * attention


class BiSeNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64,
                 encoder: str = "resnet18d") -> None:
        super().__init__()
        w = width
        # Spatial path: three stride-2 convs keep 1/8 resolution and rich detail.
        self.spatial = nn.Sequential(ConvBNAct(in_channels, w, 7, stride=2),
                                     ConvBNAct(w, w, 3, stride=2), ConvBNAct(w, w, 3, stride=2),
                                     ConvBNAct(w, 2 * w, 1))
        # Context path: stride-16 and stride-32 stages plus a global-pooling tail.
        self.backbone = timm_encoder(encoder, in_channels, width, (3, 4), (16, 32))
        c16, c32 = self.backbone.feature_info.channels()
        self.encoder_channels = c32
        self.global_context = PooledConv(c32, 2 * w)
        self.arm32 = AttentionRefinement(c32, 2 * w)
        self.arm16 = AttentionRefinement(c16, 2 * w)
        self.refine32 = ConvBNAct(2 * w, 2 * w, 3)
        self.refine16 = ConvBNAct(2 * w, 2 * w, 3)
        self.ffm = FeatureFusion(4 * w, 4 * w)
        self.head = nn.Sequential(ConvBNAct(4 * w, 4 * w, 3), nn.Conv2d(4 * w, num_classes, 1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deepest context-path stage, (B, 8*width, H/32, W/32) for ResNet encoders."""
        return self.backbone(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = self.spatial(x)
        f16, f32 = self.backbone(x)
        y = self.arm32(f32) + self.global_context(f32)
        y = self.refine32(upsample_to(y, f16))
        y = self.arm16(f16) + y
        y = self.refine16(upsample_to(y, spatial))
        return upsample_to(self.head(self.ffm(spatial, y)), x)


# -- Fast-SCNN -------------------------------------------------------------------------------

class DepthwiseSeparable(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(ConvBNAct(cin, cin, 3, stride, groups=cin), ConvBNAct(cin, cout, 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1x1 expand, 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int = 6) -> None:
        super().__init__()
        hidden = cin * expansion
        self.block = nn.Sequential(ConvBNAct(cin, hidden, 1),
                                   ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
                                   ConvBNAct(hidden, cout, 1, act=None))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class PyramidPoolingLite(nn.Module):
    """PPM (bins 1, 2, 3, 6) with a 1x1 fusion back to the input channels."""

    def __init__(self, channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        reduced = max(1, channels // 4)
        self.bins = bins
        self.branches = nn.ModuleList(PooledConv(channels, reduced) if b == 1
                                      else ConvBNAct(channels, reduced, 1) for b in bins)
        self.fuse = ConvBNAct(channels + reduced * len(bins), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for b, branch in zip(self.bins, self.branches):
            pooled = x if b == 1 else F.adaptive_avg_pool2d(x, b)
            outs.append(upsample_to(branch(pooled), x))
        return self.fuse(torch.cat(outs, 1))


class FastSCNN(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 32,
                 dropout: float = 0.1) -> None:
        super().__init__()
        c32, c48, c64, c96, c128 = (scaled(c, width, 32) for c in (32, 48, 64, 96, 128))
        self.downsample = nn.Sequential(ConvBNAct(in_channels, c32, 3, stride=2),
                                        DepthwiseSeparable(c32, c48, stride=2),
                                        DepthwiseSeparable(c48, c64, stride=2))

        def stage(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [InvertedResidual(cin, cout, stride), InvertedResidual(cout, cout, 1),
                    InvertedResidual(cout, cout, 1)]

        self.global_features = nn.Sequential(*stage(c64, c64, 2), *stage(c64, c96, 2),
                                             *stage(c96, c128, 1), PyramidPoolingLite(c128))
        self.encoder_channels = c128
        self.fuse_low = nn.Sequential(ConvBNAct(c128, c128, 3, groups=c128),
                                      ConvBNAct(c128, c128, 1, act=None))
        self.fuse_high = ConvBNAct(c64, c128, 1, act=None)
        self.classifier = nn.Sequential(DepthwiseSeparable(c128, c128),
                                        DepthwiseSeparable(c128, c128),
                                        nn.Dropout2d(dropout), nn.Conv2d(c128, num_classes, 1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Global feature extractor output, (B, 4*width, H/32, W/32)."""
        return self.global_features(self.downsample(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high = self.downsample(x)
        low = self.global_features(high)
        fused = F.relu(self.fuse_high(high) + self.fuse_low(upsample_to(low, high)))
        return upsample_to(self.classifier(fused), x)


# -- CGNet -----------------------------------------------------------------------------------

class GlobalContext(nn.Module):
    """f_glo: global pooling -> two FC layers -> channel weights."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.fc(x.mean(dim=(2, 3)))
        return x * weights[:, :, None, None]


class ContextGuidedBlock(nn.Module):
    """CG block: local (3x3) and surrounding (dilated 3x3) channel-wise features, joined and
    reweighted by global context; residual when the resolution is kept."""

    def __init__(self, cin: int, cout: int, dilation: int, reduction: int,
                 down: bool = False) -> None:
        super().__init__()
        self.down = down
        inner = cout if down else max(1, cout // 2)
        self.reduce = (ConvBNAct(cin, inner, 3, stride=2, act=nn.PReLU) if down
                       else ConvBNAct(cin, inner, 1, act=nn.PReLU))
        self.local = nn.Conv2d(inner, inner, 3, padding=1, groups=inner, bias=False)
        self.surround = nn.Conv2d(inner, inner, 3, padding=dilation, dilation=dilation,
                                  groups=inner, bias=False)
        self.joint = nn.Sequential(nn.BatchNorm2d(2 * inner), nn.PReLU(2 * inner))
        self.project = (nn.Conv2d(2 * inner, cout, 1, bias=False) if down
                        else nn.Identity())
        self.glo = GlobalContext(cout, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        y = self.joint(torch.cat([self.local(y), self.surround(y)], 1))
        y = self.glo(self.project(y))
        return y if self.down else x + y


class InputInjection(nn.Module):
    """The input, average-pooled ``times`` times by 2 (fed again at each stage)."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.times):
            x = F.avg_pool2d(x, 3, stride=2, padding=1)
        return x


class BNPReLU(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels), nn.PReLU(channels))


class CGNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 32,
                 blocks_stage2: int = 3, blocks_stage3: int = 21, dropout: float = 0.1) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width   # 32, 64, 128 in the paper
        self.stage1 = nn.Sequential(ConvBNAct(in_channels, c1, 3, stride=2, act=nn.PReLU),
                                    ConvBNAct(c1, c1, 3, act=nn.PReLU),
                                    ConvBNAct(c1, c1, 3, act=nn.PReLU))
        self.inject1, self.inject2 = InputInjection(1), InputInjection(2)
        self.norm1 = BNPReLU(c1 + in_channels)
        self.down2 = ContextGuidedBlock(c1 + in_channels, c2, dilation=2, reduction=8, down=True)
        self.stage2 = nn.Sequential(*(ContextGuidedBlock(c2, c2, 2, 8)
                                      for _ in range(blocks_stage2 - 1)))
        self.norm2 = BNPReLU(2 * c2 + in_channels)
        self.down3 = ContextGuidedBlock(2 * c2 + in_channels, c3, dilation=4, reduction=16,
                                        down=True)
        self.stage3 = nn.Sequential(*(ContextGuidedBlock(c3, c3, 4, 16)
                                      for _ in range(blocks_stage3 - 1)))
        self.norm3 = BNPReLU(2 * c3)
        self.encoder_channels = 2 * c3
        self.classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(2 * c3, num_classes, 1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Stage-3 output (joined with its first block), (B, 8*width, H/8, W/8)."""
        y = self.norm1(torch.cat([self.stage1(x), self.inject1(x)], 1))
        first2 = self.down2(y)
        y = self.norm2(torch.cat([self.stage2(first2), first2, self.inject2(x)], 1))
        first3 = self.down3(y)
        return self.norm3(torch.cat([self.stage3(first3), first3], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_to(self.classifier(self.encode(x)), x)


# -- ESPNet ----------------------------------------------------------------------------------

class EfficientSpatialPyramid(nn.Module):
    """ESP module: 1x1 reduce, five parallel dilated 3x3 convs (rates 1, 2, 4, 8, 16),
    hierarchical feature fusion (running sums) against gridding, concatenation."""

    def __init__(self, cin: int, cout: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        n = cout // 5
        first = cout - 4 * n
        if n < 1:
            raise ValueError(f"ESP module needs at least 5 output channels, got {cout}")
        kernel = 3 if stride == 2 else 1
        self.reduce = nn.Conv2d(cin, n, kernel, stride, padding=kernel // 2, bias=False)
        self.branches = nn.ModuleList(
            nn.Conv2d(n, first if rate == 1 else n, 3, padding=rate, dilation=rate, bias=False)
            for rate in (1, 2, 4, 8, 16))
        self.residual = residual and stride == 1 and cin == cout
        self.out = BNPReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        outs = [branch(y) for branch in self.branches]
        fused = [outs[0]]
        running = outs[1]
        fused.append(running)
        for o in outs[2:]:
            running = running + o
            fused.append(running)
        y = torch.cat(fused, 1)
        return self.out(x + y if self.residual else y)


class ESPNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 16,
                 blocks_level2: int = 2, blocks_level3: int = 8) -> None:
        super().__init__()
        c1, c2, c3 = width, 4 * width, 8 * width   # 16, 64, 128 in the paper
        # The decoder works in class space in the paper (19-20 Cityscapes classes); with three
        # classes its ESP module would have no channels, so it keeps the paper's 20.
        d = max(num_classes, 20)
        self.level1 = ConvBNAct(in_channels, c1, 3, stride=2, act=nn.PReLU)
        self.inject1, self.inject2 = InputInjection(1), InputInjection(2)
        self.norm1 = BNPReLU(c1 + in_channels)
        self.down2 = EfficientSpatialPyramid(c1 + in_channels, c2, stride=2)
        self.level2 = nn.Sequential(*(EfficientSpatialPyramid(c2, c2)
                                      for _ in range(blocks_level2)))
        self.norm2 = BNPReLU(2 * c2 + in_channels)
        self.down3 = EfficientSpatialPyramid(2 * c2 + in_channels, c3, stride=2)
        self.level3 = nn.Sequential(*(EfficientSpatialPyramid(c3, c3)
                                      for _ in range(blocks_level3)))
        self.norm3 = BNPReLU(2 * c3)
        self.encoder_channels = 2 * c3
        # Decoder: project each level to class space, upsample with transposed convs.
        self.project3 = nn.Sequential(nn.Conv2d(2 * c3, d, 1, bias=False), nn.BatchNorm2d(d))
        self.up3 = nn.ConvTranspose2d(d, d, 2, stride=2, bias=False)
        self.project2 = ConvBNAct(2 * c2 + in_channels, d, 1, act=nn.PReLU)
        self.combine = nn.Sequential(BNPReLU(2 * d), EfficientSpatialPyramid(2 * d, d))
        self.up2 = nn.Sequential(nn.ConvTranspose2d(d, d, 2, stride=2, bias=False), BNPReLU(d))
        self.combine1 = ConvBNAct(c1 + in_channels + d, d, 3, act=nn.PReLU)
        self.classifier = nn.ConvTranspose2d(d, num_classes, 2, stride=2, bias=False)

    def levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out1 = self.norm1(torch.cat([self.level1(x), self.inject1(x)], 1))
        first2 = self.down2(out1)
        out2 = self.norm2(torch.cat([self.level2(first2), first2, self.inject2(x)], 1))
        first3 = self.down3(out2)
        out3 = self.norm3(torch.cat([first3, self.level3(first3)], 1))
        return out1, out2, out3

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Level-3 output (ESPNet-C encoder), (B, 16*width, H/8, W/8)."""
        return self.levels(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1, out2, out3 = self.levels(x)
        y = self.up3(self.project3(out3))
        y = self.up2(self.combine(torch.cat([self.project2(out2), y], 1)))
        return self.classifier(self.combine1(torch.cat([y, out1], 1)))


MODELS = [
    ModelSpec("bisenet", BiSeNet, family="realtime",
              description="BiSeNet: spatial path (1/8) + ResNet-18-D context path with "
                          "attention refinement, feature fusion module",
              citation="Yu, Wang, Peng, Gao, Yu, Sang. BiSeNet: Bilateral Segmentation "
                       "Network for Real-time Semantic Segmentation. ECCV 2018",
              tags=("realtime", "timm"), input_multiple=32, min_size=32, has_encoder=True,
              defaults={"width": 64, "encoder": "resnet18d"},
              search_space={"width": ("categorical", [16, 32, 64])}),
    ModelSpec("fastscnn", FastSCNN, family="realtime",
              description="Fast-SCNN: learning-to-downsample, inverted-residual global "
                          "features with pyramid pooling, two-branch fusion",
              citation="Poudel, Liwicki, Cipolla. Fast-SCNN: Fast Semantic Segmentation "
                       "Network. BMVC 2019",
              tags=("realtime", "from-scratch"), input_multiple=32, min_size=32,
              has_encoder=True, defaults={"width": 32},
              search_space={"width": ("categorical", [16, 32, 64]),
                            "dropout": ("float", 0.0, 0.3, False)}),
    ModelSpec("cgnet", CGNet, family="realtime",
              description="CGNet: context guided blocks (local, surrounding and global "
                          "context), M=3 and N=21 blocks, input injection",
              citation="Wu, Tang, Liu, Zhang, Zhang. CGNet: A Light-weight Context Guided "
                       "Network for Semantic Segmentation. IEEE TIP 2021 (arXiv 2018)",
              tags=("realtime", "from-scratch"), input_multiple=8, min_size=32,
              has_encoder=True, defaults={"width": 32},
              search_space={"width": ("categorical", [16, 32, 64]),
                            "blocks_stage3": ("int", 3, 21)}),
    ModelSpec("espnet", ESPNet, family="realtime",
              description="ESPNet: efficient spatial pyramid modules of dilated convolutions "
                          "with hierarchical feature fusion, light class-space decoder",
              citation="Mehta, Rastegari, Caspi, Shapiro, Hajishirzi. ESPNet: Efficient "
                       "Spatial Pyramid of Dilated Convolutions for Semantic Segmentation. "
                       "ECCV 2018",
              tags=("realtime", "from-scratch"), input_multiple=8, min_size=32,
              has_encoder=True, defaults={"width": 16},
              search_space={"width": ("categorical", [8, 16, 32]),
                            "blocks_level3": ("int", 2, 8)}),
]
