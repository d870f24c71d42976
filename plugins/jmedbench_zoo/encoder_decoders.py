"""Classic encoder-decoders: FCN-8s, SegNet, LinkNet (width-scaled, ``width=64`` is the
paper's channel plan) and the real-time ENet and ERFNet (their papers' fixed, already small
configurations; they take no ``width``).

All are built from scratch (no pretrained weights) and take 1-channel input. Each has
``encode(x)`` returning its deepest encoder stage and an ``encoder_channels`` attribute.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from jmedbench.specs import ModelSpec


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def check_width(width: int) -> None:
    if width < 1:
        raise ValueError(f"width must be a positive channel count, got {width}")


# VGG-16: convolutions per stage; channels width * (1, 2, 4, 8, 8)
VGG16_STAGES = (2, 2, 3, 3, 3)
VGG16_MULT = (1, 2, 4, 8, 8)


def vgg_stage(cin: int, cout: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[conv_bn_relu(cin if i == 0 else cout, cout) for i in range(n)])


def vgg16_stages(in_channels: int, width: int) -> tuple[nn.ModuleList, list[int]]:
    """The five convolution stages of VGG-16-BN (no pooling) and their channels, width times
    VGG16_MULT: the encoder FCN-8s and SegNet share."""
    check_width(width)
    chans = [width * m for m in VGG16_MULT]
    cins = [in_channels] + chans[:-1]
    return (nn.ModuleList(vgg_stage(ci, co, n) for ci, co, n in zip(cins, chans, VGG16_STAGES)),
            chans)


# -- FCN-8s -----------------------------------------------------------------------------------
def bilinear_kernel(channels: int, kernel: int) -> torch.Tensor:
    """Weights that make a ConvTranspose2d (channels -> channels, groups 1) a bilinear
    up-sampler, the initialisation of FCN's learnable up-sampling layers."""
    factor = (kernel + 1) // 2
    center = factor - 1 if kernel % 2 == 1 else factor - 0.5
    og = torch.arange(kernel, dtype=torch.float32)
    filt = 1 - (og - center).abs() / factor
    filt2d = filt[:, None] * filt[None, :]
    weight = torch.zeros(channels, channels, kernel, kernel)
    weight[range(channels), range(channels)] = filt2d
    return weight


class FCN8s(nn.Module):
    """FCN-8s (Long, Shelhamer, Darrell 2015) on a VGG-16 (with batch norm) trained from
    scratch: class scores from pool5 (through fc6/fc7), pool4 and pool3 are fused by learnable
    x2 up-samplings (bilinear-initialised) and the sum is up-sampled x8 bilinearly (fixed, as
    in the paper). fc6/fc7 are 3x3 and 1x1 convolutions with 16 * width channels rather than
    7x7 x 4096, which would put ~90% of the parameters into one layer at width 64."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.stages, chans = vgg16_stages(in_channels, width)
        fc = 16 * width
        self.fc = nn.Sequential(
            nn.Conv2d(chans[4], fc, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout2d(dropout),
            nn.Conv2d(fc, fc, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout))
        self.score_fr = nn.Conv2d(fc, num_classes, 1)
        self.score_pool4 = nn.Conv2d(chans[3], num_classes, 1)
        self.score_pool3 = nn.Conv2d(chans[2], num_classes, 1)
        self.up2_fr = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
        self.up2_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
        with torch.no_grad():
            for up in (self.up2_fr, self.up2_pool4):
                up.weight.copy_(bilinear_kernel(num_classes, 4))
            # the paper zero-initialises the skip scores so training starts from FCN-32s
            for score in (self.score_pool4, self.score_pool3):
                nn.init.zeros_(score.weight)
                nn.init.zeros_(score.bias)
        self.encoder_channels = fc

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """pool1..pool5 outputs, scales 1/2 .. 1/32."""
        pools = []
        for stage in self.stages:
            x = F.max_pool2d(stage(x), 2)
            pools.append(x)
        return pools

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """fc7: (B, 16*width, H/32, W/32)."""
        return self.fc(self.features(x)[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pools = self.features(x)
        y = self.up2_fr(self.score_fr(self.fc(pools[4]))) + self.score_pool4(pools[3])
        y = self.up2_pool4(y) + self.score_pool3(pools[2])
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


# -- SegNet -----------------------------------------------------------------------------------
class SegNet(nn.Module):
    """SegNet (Badrinarayanan, Kendall, Cipolla 2017): the 13 convolutions of VGG-16 (with
    batch norm) as encoder, max pooling that keeps its indices, and a mirrored decoder that
    up-samples by max-unpooling with those indices (no learned up-sampling, no skip features)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__()
        self.enc, chans = vgg16_stages(in_channels, width)
        # decoder stage i mirrors encoder stage i: n convs at chans[i], the last one going to
        # the channels of the stage above (chans[i-1]); the top stage ends at width
        self.dec = nn.ModuleList()
        for i, n in enumerate(VGG16_STAGES):
            cout = chans[i - 1] if i > 0 else chans[0]
            convs = [conv_bn_relu(chans[i], chans[i]) for _ in range(n - 1)]
            convs.append(conv_bn_relu(chans[i], cout))
            self.dec.append(nn.Sequential(*convs))
        self.head = nn.Conv2d(chans[0], num_classes, 3, padding=1)
        self.encoder_channels = chans[4]

    def encode_with_indices(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        pooled = []
        for stage in self.enc:
            x = stage(x)
            size = x.shape[-2:]
            x, idx = F.max_pool2d(x, 2, return_indices=True)
            pooled.append((idx, size))
        return x, pooled

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """After pool5: (B, 8*width, H/32, W/32)."""
        return self.encode_with_indices(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, pooled = self.encode_with_indices(x)
        for i in reversed(range(5)):
            idx, size = pooled[i]
            y = self.dec[i](F.max_unpool2d(y, idx, 2, output_size=size))
        return self.head(y)


# -- LinkNet ----------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """ResNet-18 basic block."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(cout))
        self.shortcut = (nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class LinkNetDecoder(nn.Module):
    """LinkNet decoder block: 1x1 (m -> m/4), 3x3 full-convolution x2 (m/4), 1x1 (m/4 -> n).
    Without ``upsample`` the middle layer is a plain 3x3 convolution."""

    def __init__(self, m: int, n: int, upsample: bool = True) -> None:
        super().__init__()
        q = max(m // 4, 1)
        middle = (nn.ConvTranspose2d(q, q, 3, stride=2, padding=1, output_padding=1, bias=False)
                  if upsample else nn.Conv2d(q, q, 3, padding=1, bias=False))
        self.body = nn.Sequential(
            conv_bn_relu(m, q, 1),
            middle, nn.BatchNorm2d(q), nn.ReLU(inplace=True),
            conv_bn_relu(q, n, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class LinkNet(nn.Module):
    """LinkNet (Chaurasia & Culurciello 2017): a ResNet-18 encoder whose stage outputs are
    *added* to the decoder (the link), with light decoder blocks. Channels width * (1, 2, 4,
    8); width 64 is the paper's network (11.5M parameters). Encoder block 1 keeps the
    resolution, as ResNet-18's first stage (whose weights the paper's encoder reuses) does, so
    decoder block 1 does not up-sample either and the output is at input size."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__()
        check_width(width)
        c = [width, 2 * width, 4 * width, 8 * width]
        self.stem = conv_bn_relu(in_channels, c[0], 7, 2)
        self.encoders = nn.ModuleList()
        cin = c[0]
        for i, cout in enumerate(c):
            stride = 1 if i == 0 else 2
            self.encoders.append(nn.Sequential(BasicBlock(cin, cout, stride),
                                               BasicBlock(cout, cout)))
            cin = cout
        self.decoders = nn.ModuleList(LinkNetDecoder(c[i], c[i - 1] if i > 0 else c[0],
                                                     upsample=i > 0) for i in range(4))
        half = max(width // 2, 1)
        self.final = nn.Sequential(
            nn.ConvTranspose2d(c[0], half, 3, stride=2, padding=1, output_padding=1,
                               bias=False),
            nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            conv_bn_relu(half, half, 3),
            nn.ConvTranspose2d(half, num_classes, 2, stride=2))
        self.encoder_channels = c[3]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(self.stem(x), 3, stride=2, padding=1)
        feats = []
        for enc in self.encoders:
            x = enc(x)
            feats.append(x)
        return feats  # scales 1/4, 1/8, 1/16, 1/32

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 8*width, H/32, W/32)."""
        return self.features(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.features(x)
        y = feats[3]
        for i in reversed(range(4)):
            y = self.decoders[i](y)
            if i > 0:
                y = y + feats[i - 1]
        return self.final(y)


# -- ENet -------------------------------------------------------------------------------------
class InitialBlock(nn.Module):
    """3x3 stride-2 convolution concatenated with a max-pooled copy of the input: 16 channels
    (13 + 3 for RGB in the paper; 16 - in_channels convolution filters here)."""

    def __init__(self, in_channels: int, out_channels: int = 16) -> None:
        super().__init__()
        if in_channels >= out_channels:
            raise ValueError(f"ENet's initial block needs fewer than {out_channels} input "
                             f"channels, got {in_channels}")
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), F.max_pool2d(x, 2)], dim=1)))


class ENetBottleneck(nn.Module):
    """ENet bottleneck: 1x1 projection (2x2 stride 2 when down-sampling), a regular, dilated or
    asymmetric (5x1 then 1x5) convolution, 1x1 expansion, spatial dropout; the main branch is
    the identity, or max-pooling (indices kept) with zero channel padding when down-sampling."""

    def __init__(self, cin: int, cout: int, kind: str = "regular", dilation: int = 1,
                 downsample: bool = False, dropout: float = 0.1) -> None:
        super().__init__()
        mid = cin // 4 if not downsample else cout // 4
        self.downsample, self.cin, self.cout = downsample, cin, cout
        first = (nn.Conv2d(cin, mid, 2, 2, bias=False) if downsample
                 else nn.Conv2d(cin, mid, 1, bias=False))
        if kind == "asymmetric":
            middle = nn.Sequential(nn.Conv2d(mid, mid, (5, 1), padding=(2, 0), bias=False),
                                   nn.Conv2d(mid, mid, (1, 5), padding=(0, 2), bias=False))
        else:
            middle = nn.Conv2d(mid, mid, 3, padding=dilation, dilation=dilation, bias=False)
        self.ext = nn.Sequential(
            first, nn.BatchNorm2d(mid), nn.PReLU(mid),
            middle, nn.BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout),
            nn.Dropout2d(dropout))
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        indices = None
        main = x
        if self.downsample:
            main, indices = F.max_pool2d(x, 2, return_indices=True)
            if self.cout > self.cin:
                main = F.pad(main, (0, 0, 0, 0, 0, self.cout - self.cin))
        return self.act(main + self.ext(x)), indices


class ENetUpsample(nn.Module):
    """ENet up-sampling bottleneck: main branch 1x1 conv then max-unpooling with the indices
    of the matching down-sampling; extension 1x1, 3x3 transposed conv x2, 1x1."""

    def __init__(self, cin: int, cout: int, dropout: float = 0.1) -> None:
        super().__init__()
        mid = cin // 4
        self.main = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.ext = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.PReLU(mid),
            nn.ConvTranspose2d(mid, mid, 3, 2, 1, output_padding=1, bias=False),
            nn.BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.Dropout2d(dropout))
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor, indices: torch.Tensor, size) -> torch.Tensor:
        main = F.max_unpool2d(self.main(x), indices, 2, output_size=size)
        return self.act(main + self.ext(x))


class ENet(nn.Module):
    """ENet (Paszke et al. 2016), Table 1: initial block, stage 1 (down to 64 channels + 4
    bottlenecks), stages 2 and 3 (128 channels; regular, dilated 2/4/8/16 and asymmetric 5
    bottlenecks), stages 4 and 5 (up-sampling with the pooling indices), a final transposed
    convolution. About 0.35M parameters."""

    STAGE23 = (("regular", 1), ("dilated", 2), ("asymmetric", 1), ("dilated", 4),
               ("regular", 1), ("dilated", 8), ("asymmetric", 1), ("dilated", 16))

    def __init__(self, in_channels: int = 1, num_classes: int = 3,
                 dropout: float = 0.1) -> None:
        super().__init__()
        d1 = dropout / 10  # the paper: 0.01 before the 2nd stage, 0.1 afterwards
        self.initial = InitialBlock(in_channels, 16)
        self.down1 = ENetBottleneck(16, 64, downsample=True, dropout=d1)
        self.stage1 = nn.ModuleList(ENetBottleneck(64, 64, dropout=d1) for _ in range(4))
        self.down2 = ENetBottleneck(64, 128, downsample=True, dropout=dropout)
        self.stage23 = nn.ModuleList(ENetBottleneck(128, 128, kind, dil, dropout=dropout)
                                     for _ in range(2) for kind, dil in self.STAGE23)
        self.up4 = ENetUpsample(128, 64, dropout)
        self.stage4 = nn.ModuleList(ENetBottleneck(64, 64, dropout=dropout) for _ in range(2))
        self.up5 = ENetUpsample(64, 16, dropout)
        self.stage5 = ENetBottleneck(16, 16, dropout=dropout)
        self.full_conv = nn.ConvTranspose2d(16, num_classes, 3, 2, 1, output_padding=1)
        self.encoder_channels = 128

    def _encode(self, x: torch.Tensor):
        x0 = self.initial(x)
        x1, idx1 = self.down1(x0)
        for block in self.stage1:
            x1, _ = block(x1)
        x2, idx2 = self.down2(x1)
        for block in self.stage23:
            x2, _ = block(x2)
        return x2, (idx1, x0.shape[-2:]), (idx2, x1.shape[-2:])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """End of stage 3: (B, 128, H/8, W/8)."""
        return self._encode(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, (idx1, size1), (idx2, size2) = self._encode(x)
        y = self.up4(y, idx2, size2)
        for block in self.stage4:
            y, _ = block(y)
        y = self.up5(y, idx1, size1)
        y, _ = self.stage5(y)
        return self.full_conv(y)


# -- ERFNet -----------------------------------------------------------------------------------
class DownsamplerBlock(nn.Module):
    """ERFNet/ENet down-sampler: 3x3 stride-2 conv (cout - cin filters) || 2x2 max-pool."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout - cin, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(torch.cat([self.conv(x), F.max_pool2d(x, 2)], dim=1)))


class NonBottleneck1D(nn.Module):
    """ERFNet's factorised residual layer: (3x1, ReLU, 1x3, BN, ReLU) twice, the second pair
    dilated, dropout, identity shortcut."""

    def __init__(self, channels: int, dilation: int, dropout: float) -> None:
        super().__init__()
        d = dilation
        self.conv3x1_1 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(channels, eps=1e-3)
        self.conv3x1_2 = nn.Conv2d(channels, channels, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.conv1x3_2 = nn.Conv2d(channels, channels, (1, 3), padding=(0, d), dilation=(1, d),
                                   bias=False)
        self.bn2 = nn.BatchNorm2d(channels, eps=1e-3)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv3x1_1(x))
        y = F.relu(self.bn1(self.conv1x3_1(y)))
        y = F.relu(self.conv3x1_2(y))
        y = self.dropout(self.bn2(self.conv1x3_2(y)))
        return F.relu(y + x)


class UpsamplerBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3), nn.ReLU(inplace=True))


class ERFNet(nn.Module):
    """ERFNet (Romera et al. 2018), Table I: down-samplers to 16, 64 and 128 channels, 5
    non-bottleneck-1D layers at 64, 8 at 128 with dilations 2, 4, 8, 16 (twice), and a small
    decoder of transposed convolutions. About 2.1M parameters. (The conv biases before batch
    norm follow the paper's code; the norm removes their effect, so they receive zero
    gradient and are left out here.)"""

    def __init__(self, in_channels: int = 1, num_classes: int = 3,
                 dropout: float = 0.3) -> None:
        super().__init__()
        d64 = dropout / 10  # the paper: 0.03 at 64 channels, 0.3 at 128
        self.encoder = nn.Sequential(
            DownsamplerBlock(in_channels, 16), DownsamplerBlock(16, 64),
            *[NonBottleneck1D(64, 1, d64) for _ in range(5)],
            DownsamplerBlock(64, 128),
            *[NonBottleneck1D(128, d, dropout) for _ in range(2) for d in (2, 4, 8, 16)])
        self.decoder = nn.Sequential(
            UpsamplerBlock(128, 64), NonBottleneck1D(64, 1, 0.0), NonBottleneck1D(64, 1, 0.0),
            UpsamplerBlock(64, 16), NonBottleneck1D(16, 1, 0.0), NonBottleneck1D(16, 1, 0.0),
            nn.ConvTranspose2d(16, num_classes, 2, stride=2))
        self.encoder_channels = 128

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 128, H/8, W/8)."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


WIDTH_SPACE = {"width": ("categorical", [16, 32, 64])}

MODELS = [
    ModelSpec(
        "fcn8s", FCN8s, family="encoder-decoder",
        description="FCN-8s on a VGG-16-BN from scratch, pool3/pool4 score fusion "
                    "(channels w..8w, fc 16w)",
        citation="Long, Shelhamer, Darrell. Fully Convolutional Networks for Semantic "
                 "Segmentation. CVPR 2015",
        tags=("fcn", "vgg"), input_multiple=32, min_size=32, has_encoder=True,
        defaults={"width": 64, "dropout": 0.5},
        search_space={**WIDTH_SPACE, "dropout": ("float", 0.0, 0.5, False)}),
    ModelSpec(
        "segnet", SegNet, family="encoder-decoder",
        description="SegNet: VGG-16-BN encoder, decoder up-sampling by pooling indices "
                    "(channels w..8w)",
        citation="Badrinarayanan, Kendall, Cipolla. SegNet: A Deep Convolutional "
                 "Encoder-Decoder Architecture for Image Segmentation. IEEE TPAMI 39(12), 2017",
        tags=("segnet", "vgg", "unpooling"), input_multiple=32, min_size=32, has_encoder=True,
        defaults={"width": 64}, search_space=WIDTH_SPACE),
    ModelSpec(
        "linknet", LinkNet, family="encoder-decoder",
        description="LinkNet: ResNet-18 encoder (from scratch) linked to the decoder by "
                    "addition (channels w..8w)",
        citation="Chaurasia, Culurciello. LinkNet: Exploiting Encoder Representations for "
                 "Efficient Semantic Segmentation. IEEE VCIP 2017",
        tags=("linknet", "resnet", "real-time"), input_multiple=32, min_size=32,
        has_encoder=True, defaults={"width": 64}, search_space=WIDTH_SPACE),
    ModelSpec(
        "enet", ENet, family="encoder-decoder",
        description="ENet: real-time bottleneck network, paper configuration (no width)",
        citation="Paszke, Chaurasia, Kim, Culurciello. ENet: A Deep Neural Network "
                 "Architecture for Real-Time Semantic Segmentation. arXiv:1606.02147, 2016",
        tags=("real-time", "efficient"), input_multiple=8, min_size=16, has_encoder=True,
        defaults={"dropout": 0.1}, search_space={"dropout": ("float", 0.0, 0.3, False)}),
    ModelSpec(
        "erfnet", ERFNet, family="encoder-decoder",
        description="ERFNet: factorised residual (non-bottleneck-1D) layers, paper "
                    "configuration (no width)",
        citation="Romera, Alvarez, Bergasa, Arroyo. ERFNet: Efficient Residual Factorized "
                 "ConvNet for Real-Time Semantic Segmentation. IEEE T-ITS 19(1), 2018",
        tags=("real-time", "efficient", "factorised"), input_multiple=8, min_size=16,
        has_encoder=True, defaults={"dropout": 0.3},
        search_space={"dropout": ("float", 0.0, 0.5, False)}),
]
