"""Context models: a decoder head that gathers context (pyramid pooling, atrous pyramids,
self-attention, object regions, dense atrous blocks) on a timm ResNet backbone.

The backbones are timm ResNets with ``features_only=True`` and random initialisation; their
stage channels follow ``width`` (64 gives the standard ResNet-18-D / ResNet-34-D). The papers
use ImageNet-pretrained ResNet-50/101; this benchmark trains from scratch on one channel, so
the smaller backbone keeps a CPU run affordable. Any other timm backbone that supports
``features_only`` (and ``output_stride`` for the dilated models) can be named with ``encoder``.

Where a paper puts BatchNorm after global pooling (PSPNet's 1x1 bin, the ASPP image pooling),
a biased conv without BatchNorm is used instead, so training with batch size 1 works.
Auxiliary losses of the papers (PSPNet, DANet, OCRNet) are left out: the trainer takes one
output.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from jmedbench.specs import ModelSpec

from ._building_blocks import ConvBNAct, PooledConv, timm_encoder, upsample_to


class BackboneModel(nn.Module):
    """Holds a timm backbone; ``encode`` returns its deepest stage."""

    def _init_backbone(self, encoder: str, in_channels: int, width: int,
                       out_indices: tuple[int, ...], strides: tuple[int, ...],
                       output_stride: int) -> list[int]:
        self.backbone = timm_encoder(encoder, in_channels, width, out_indices, strides,
                                     output_stride)
        channels = self.backbone.feature_info.channels()
        self.encoder_channels = channels[-1]
        return channels

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deepest backbone stage, (B, C, H/s, W/s) with s the output stride."""
        return self.backbone(x)[-1]


# -- PSPNet ----------------------------------------------------------------------------------

class PyramidPooling(nn.Module):
    """Average-pool to bins x bins, reduce to cin/len(bins) channels, upsample, concatenate."""

    def __init__(self, cin: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        reduced = cin // len(bins)
        self.bins = bins
        self.branches = nn.ModuleList(
            PooledConv(cin, reduced) if b == 1 else ConvBNAct(cin, reduced, 1) for b in bins)
        self.out_channels = cin + reduced * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for b, branch in zip(self.bins, self.branches):
            if b == 1:
                outs.append(branch(x))
            else:
                outs.append(upsample_to(branch(F.adaptive_avg_pool2d(x, b)), x))
        return torch.cat(outs, 1)


class PSPNet(BackboneModel):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64,
                 encoder: str = "resnet18d", dropout: float = 0.1) -> None:
        super().__init__()
        channels = self._init_backbone(encoder, in_channels, width, (4,), (8,), output_stride=8)
        self.ppm = PyramidPooling(channels[-1])
        self.head = nn.Sequential(ConvBNAct(self.ppm.out_channels, 8 * width, 3),
                                  nn.Dropout2d(dropout), nn.Conv2d(8 * width, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_to(self.head(self.ppm(self.encode(x))), x)


# -- DeepLab ---------------------------------------------------------------------------------

class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and an image-pooling branch."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...] = (6, 12, 18),
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.branches = nn.ModuleList([ConvBNAct(cin, cout, 1)] +
                                      [ConvBNAct(cin, cout, 3, dilation=r) for r in rates] +
                                      [PooledConv(cin, cout)])
        self.project = nn.Sequential(ConvBNAct(cout * (len(rates) + 2), cout, 1),
                                     nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], 1))


class DeepLabV3(BackboneModel):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64,
                 encoder: str = "resnet18d", output_stride: int = 16,
                 atrous_rates: tuple[int, ...] = (6, 12, 18)) -> None:
        super().__init__()
        channels = self._init_backbone(encoder, in_channels, width, (4,), (output_stride,),
                                       output_stride)
        self.aspp = ASPP(channels[-1], 4 * width, tuple(atrous_rates))
        self.head = nn.Sequential(ConvBNAct(4 * width, 4 * width, 3),
                                  nn.Conv2d(4 * width, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_to(self.head(self.aspp(self.encode(x))), x)


class DeepLabV3Plus(BackboneModel):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64,
                 encoder: str = "resnet18d", output_stride: int = 16,
                 atrous_rates: tuple[int, ...] = (6, 12, 18)) -> None:
        super().__init__()
        # index 1 is the stride-4 stage the decoder takes its low-level features from
        channels = self._init_backbone(encoder, in_channels, width, (1, 4), (4, output_stride),
                                       output_stride)
        self.aspp = ASPP(channels[-1], 4 * width, tuple(atrous_rates))
        low = max(8, 3 * width // 4)  # 48 channels at width 64, as in the paper
        self.reduce_low = ConvBNAct(channels[0], low, 1)
        self.decoder = nn.Sequential(ConvBNAct(4 * width + low, 4 * width, 3),
                                     ConvBNAct(4 * width, 4 * width, 3),
                                     nn.Conv2d(4 * width, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, deep = self.backbone(x)
        low = self.reduce_low(low)
        y = torch.cat([upsample_to(self.aspp(deep), low), low], 1)
        return upsample_to(self.decoder(y), x)


# -- DANet -----------------------------------------------------------------------------------

class PositionAttention(nn.Module):
    """Self-attention over positions; the output enters through a zero-initialised scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, max(1, channels // 8), 1)
        self.key = nn.Conv2d(channels, max(1, channels // 8), 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)           # B, N, c'
        k = self.key(x).flatten(2)                             # B, c', N
        attention = torch.softmax(torch.bmm(q, k), dim=-1)     # B, N, N
        v = self.value(x).flatten(2)                           # B, C, N
        out = torch.bmm(v, attention.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * out + x


class ChannelAttention(nn.Module):
    """Self-attention over channels (the paper's max-minus-energy form)."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.flatten(2)
        energy = torch.bmm(flat, flat.transpose(1, 2))
        energy = energy.amax(dim=-1, keepdim=True).expand_as(energy) - energy
        attention = torch.softmax(energy, dim=-1)
        out = torch.bmm(attention, flat).view(b, c, h, w)
        return self.gamma * out + x


class DANet(BackboneModel):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64,
                 encoder: str = "resnet18d", dropout: float = 0.1) -> None:
        super().__init__()
        channels = self._init_backbone(encoder, in_channels, width, (4,), (8,), output_stride=8)
        inter = channels[-1] // 4
        self.position = nn.Sequential(ConvBNAct(channels[-1], inter, 3), PositionAttention(inter),
                                      ConvBNAct(inter, inter, 3))
        self.channel = nn.Sequential(ConvBNAct(channels[-1], inter, 3), ChannelAttention(),
                                     ConvBNAct(inter, inter, 3))
        self.head = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(inter, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encode(x)
        return upsample_to(self.head(self.position(feats) + self.channel(feats)), x)


# -- OCRNet ----------------------------------------------------------------------------------

class ObjectContext(nn.Module):
    """Object-contextual representations: soft object regions -> region features -> each
    pixel attends to the regions -> context concatenated with the pixel features."""

    def __init__(self, channels: int, key_channels: int, dropout: float = 0.05) -> None:
        super().__init__()
        self.f_pixel = nn.Sequential(ConvBNAct(channels, key_channels, 1),
                                     ConvBNAct(key_channels, key_channels, 1))
        self.f_object = nn.Sequential(ConvBNAct(channels, key_channels, 1),
                                      ConvBNAct(key_channels, key_channels, 1))
        self.f_down = ConvBNAct(channels, key_channels, 1)
        self.f_up = ConvBNAct(key_channels, channels, 1)
        self.fuse = nn.Sequential(ConvBNAct(2 * channels, channels, 1), nn.Dropout2d(dropout))
        self.scale = key_channels ** -0.5

    def forward(self, feats: torch.Tensor, region_logits: torch.Tensor) -> torch.Tensor:
        b, c, h, w = feats.shape
        probs = torch.softmax(region_logits.flatten(2), dim=-1)            # B, K, N
        regions = torch.bmm(probs, feats.flatten(2).transpose(1, 2))        # B, K, C
        regions = regions.transpose(1, 2).unsqueeze(-1)                     # B, C, K, 1
        query = self.f_pixel(feats).flatten(2).transpose(1, 2)              # B, N, c
        key = self.f_object(regions).flatten(2)                             # B, c, K
        value = self.f_down(regions).flatten(2).transpose(1, 2)             # B, K, c
        relation = torch.softmax(torch.bmm(query, key) * self.scale, dim=-1)  # B, N, K
        context = torch.bmm(relation, value).transpose(1, 2).reshape(b, -1, h, w)
        return self.fuse(torch.cat([self.f_up(context), feats], 1))


class OCRNet(BackboneModel):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64,
                 encoder: str = "resnet18d") -> None:
        super().__init__()
        # Soft object regions come from stage 3, pixel representations from stage 4
        # (the paper's ResNet variant).
        channels = self._init_backbone(encoder, in_channels, width, (3, 4), (8, 8),
                                       output_stride=8)
        mid = 8 * width        # 512 at width 64, as in the paper
        self.regions = nn.Sequential(ConvBNAct(channels[0], 4 * width, 3),
                                     nn.Conv2d(4 * width, num_classes, 1))
        self.pixels = ConvBNAct(channels[1], mid, 3)
        self.ocr = ObjectContext(mid, 4 * width)
        self.head = nn.Conv2d(mid, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stage3, stage4 = self.backbone(x)
        feats = self.ocr(self.pixels(stage4), self.regions(stage3))
        return upsample_to(self.head(feats), x)


# -- CE-Net ----------------------------------------------------------------------------------

class DenseAtrousBlock(nn.Module):
    """DAC: four cascaded branches with receptive fields 3, 7, 9, 19, added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dilate1 = nn.Conv2d(channels, channels, 3, dilation=1, padding=1)
        self.dilate3 = nn.Conv2d(channels, channels, 3, dilation=3, padding=3)
        self.dilate5 = nn.Conv2d(channels, channels, 3, dilation=5, padding=5)
        self.conv1x1 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.dilate1(x)
        b1 = F.relu(d1)
        b2 = F.relu(self.conv1x1(self.dilate3(x)))
        d13 = self.dilate3(d1)
        b3 = F.relu(self.conv1x1(d13))
        b4 = F.relu(self.conv1x1(self.dilate5(d13)))
        return x + b1 + b2 + b3 + b4


class ResidualMultiKernelPooling(nn.Module):
    """RMP: max-pool with kernels 2, 3, 5, 6, reduce each to one channel, upsample, concat.

    On maps smaller than a kernel (small inputs) the kernel shrinks to the map size."""

    def __init__(self, channels: int, kernels: tuple[int, ...] = (2, 3, 5, 6)) -> None:
        super().__init__()
        self.kernels = kernels
        self.reduce = nn.Conv2d(channels, 1, 1)
        self.out_channels = channels + len(kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pooled = []
        for k in self.kernels:
            kh, kw = min(k, h), min(k, w)
            pooled.append(upsample_to(self.reduce(F.max_pool2d(x, (kh, kw), (kh, kw))), x))
        return torch.cat(pooled + [x], 1)


class CENetDecoderBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        mid = max(1, cin // 4)
        super().__init__(ConvBNAct(cin, mid, 1),
                         nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1,
                                            bias=False),
                         nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                         ConvBNAct(mid, cout, 1))


class CENet(BackboneModel):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64,
                 encoder: str = "resnet34d") -> None:
        super().__init__()
        channels = self._init_backbone(encoder, in_channels, width, (1, 2, 3, 4), (4, 8, 16, 32),
                                       output_stride=32)
        self.dac = DenseAtrousBlock(channels[3])
        self.rmp = ResidualMultiKernelPooling(channels[3])
        self.decoder4 = CENetDecoderBlock(self.rmp.out_channels, channels[2])
        self.decoder3 = CENetDecoderBlock(channels[2], channels[1])
        self.decoder2 = CENetDecoderBlock(channels[1], channels[0])
        self.decoder1 = CENetDecoderBlock(channels[0], channels[0])
        final = max(4, channels[0] // 2)
        self.final = nn.Sequential(
            nn.ConvTranspose2d(channels[0], final, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(final, final, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(final, num_classes, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1, e2, e3, e4 = self.backbone(x)
        y = self.rmp(self.dac(e4))
        y = self.decoder4(y) + e3
        y = self.decoder3(y) + e2
        y = self.decoder2(y) + e1
        return self.final(self.decoder1(y))


_ENCODERS = ("categorical", ["resnet18d", "resnet34d"])
_WIDTH = ("categorical", [16, 32, 64])

MODELS = [
    ModelSpec("pspnet", PSPNet, family="context",
              description="PSPNet: pyramid pooling (bins 1,2,3,6) on a dilated ResNet-18-D, "
                          "output stride 8",
              citation="Zhao, Shi, Qi, Wang, Jia. Pyramid Scene Parsing Network. CVPR 2017",
              tags=("context", "timm", "dilated"), input_multiple=32, min_size=32,
              has_encoder=True, defaults={"width": 64, "encoder": "resnet18d"},
              search_space={"width": _WIDTH, "encoder": _ENCODERS,
                            "dropout": ("float", 0.0, 0.3, False)}),
    ModelSpec("deeplabv3", DeepLabV3, family="context",
              description="DeepLabV3: ASPP (rates 6,12,18 + image pooling) on a dilated "
                          "ResNet-18-D, output stride 16",
              citation="Chen, Papandreou, Schroff, Adam. Rethinking Atrous Convolution for "
                       "Semantic Image Segmentation. arXiv:1706.05587, 2017",
              tags=("context", "timm", "dilated", "deeplab"), input_multiple=32, min_size=32,
              has_encoder=True, defaults={"width": 64, "encoder": "resnet18d"},
              search_space={"width": _WIDTH, "encoder": _ENCODERS,
                            "output_stride": ("categorical", [8, 16])}),
    ModelSpec("deeplabv3plus", DeepLabV3Plus, family="context",
              description="DeepLabV3+: ASPP encoder plus a decoder fusing stride-4 features, "
                          "dilated ResNet-18-D, output stride 16",
              citation="Chen, Zhu, Papandreou, Schroff, Adam. Encoder-Decoder with Atrous "
                       "Separable Convolution for Semantic Image Segmentation. ECCV 2018",
              tags=("context", "timm", "dilated", "deeplab"), input_multiple=32, min_size=32,
              has_encoder=True, defaults={"width": 64, "encoder": "resnet18d"},
              search_space={"width": _WIDTH, "encoder": _ENCODERS,
                            "output_stride": ("categorical", [8, 16])}),
    ModelSpec("danet", DANet, family="context",
              description="DANet: position and channel self-attention heads on a dilated "
                          "ResNet-18-D, output stride 8",
              citation="Fu, Liu, Tian, Li, Bao, Fang, Lu. Dual Attention Network for Scene "
                       "Segmentation. CVPR 2019",
              tags=("context", "timm", "dilated", "attention"), input_multiple=32, min_size=32,
              has_encoder=True, defaults={"width": 64, "encoder": "resnet18d"},
              search_space={"width": _WIDTH, "encoder": _ENCODERS}),
    ModelSpec("ocrnet", OCRNet, family="context",
              description="OCRNet: object-contextual representations (soft regions from stage "
                          "3) on a dilated ResNet-18-D, output stride 8; no auxiliary loss",
              citation="Yuan, Chen, Wang. Object-Contextual Representations for Semantic "
                       "Segmentation. ECCV 2020",
              tags=("context", "timm", "dilated", "attention"), input_multiple=32, min_size=32,
              has_encoder=True, defaults={"width": 64, "encoder": "resnet18d"},
              search_space={"width": _WIDTH, "encoder": _ENCODERS}),
    ModelSpec("cenet", CENet, family="context",
              description="CE-Net: ResNet-34-D encoder, dense atrous convolution and residual "
                          "multi-kernel pooling, transposed-conv decoder",
              citation="Gu, Cheng, Fu, Zhou, Hao, Zhao, Zhang, Gao, Liu. CE-Net: Context "
                       "Encoder Network for 2D Medical Image Segmentation. IEEE TMI 2019",
              tags=("context", "timm", "medical"), input_multiple=32, min_size=32,
              has_encoder=True, defaults={"width": 64, "encoder": "resnet34d"},
              search_space={"width": _WIDTH, "encoder": _ENCODERS}),
]
