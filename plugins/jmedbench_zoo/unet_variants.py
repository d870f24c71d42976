"""The UNet family beyond the plain UNet: attention gates, nested and full-scale skips,
recurrent-residual, residual, dense and multi-resolution blocks.

Every model here takes ``width``, the channel count of its first stage; the deeper stages
double it (``width * (1, 2, 4, 8, 16)`` unless a docstring says otherwise), so ``width=64``
is the configuration of the paper where the paper used 64 first-stage filters. Every model
has ``encode(x)`` returning its deepest encoder stage and an ``encoder_channels`` attribute.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from jmedbench.specs import ModelSpec
from jmedbench_zoo.unet import DoubleConv


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1,
                 dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad, dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def stage_channels(width: int, stages: int = 5) -> list[int]:
    if width < 1:
        raise ValueError(f"width must be a positive channel count, got {width}")
    return [width * 2 ** i for i in range(stages)]


class PlainEncoder(nn.Module):
    """Five stages of a block, max pooling between them (the UNet encoder)."""

    def __init__(self, in_channels: int, channels: list[int], block) -> None:
        super().__init__()
        cins = [in_channels] + channels[:-1]
        self.blocks = nn.ModuleList(block(cin, cout) for cin, cout in zip(cins, channels))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        return feats


class PlainEncoderUNet(nn.Module):
    """What the models on a :class:`PlainEncoder` share: its five stages at
    ``stage_channels(width)`` (kept in ``channels``) and ``encode``, the deepest of them."""

    def __init__(self, in_channels: int, width: int, block) -> None:
        super().__init__()
        self.channels = stage_channels(width)
        self.encoder = PlainEncoder(in_channels, self.channels, block)
        self.encoder_channels = self.channels[4]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 16*width, H/16, W/16)."""
        return self.encoder(x)[-1]


# -- Attention UNet ---------------------------------------------------------------------------
class AttentionGate(nn.Module):
    """Additive attention gate of Oktay et al. (2018), Fig. 2: the skip features x (fine) are
    brought to the gating signal's (coarse) grid by a strided 1x1 projection, added to the
    projected gating signal, and the resulting sigmoid map is resampled back to x's grid and
    multiplies x."""

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta_x = nn.Conv2d(skip_channels, inter_channels, 2, stride=2, bias=False)
        self.phi_g = nn.Conv2d(gate_channels, inter_channels, 1, bias=True)
        self.psi = nn.Conv2d(inter_channels, 1, 1, bias=True)
        # The paper follows the gate by a 1x1 convolution + BN on the gated features.
        self.out = nn.Sequential(nn.Conv2d(skip_channels, skip_channels, 1, bias=False),
                                 nn.BatchNorm2d(skip_channels))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        theta = self.theta_x(x)
        phi = F.interpolate(self.phi_g(g), size=theta.shape[-2:], mode="bilinear",
                            align_corners=False)
        alpha = torch.sigmoid(self.psi(F.relu(theta + phi)))
        return self.out(x * upsample_to(alpha, x))


class SkipUNet(PlainEncoderUNet):
    """A PlainEncoder and the UNet decoder: up-sample, a 3x3 convolution to the skip's channels,
    concatenate the skip, a block. ``gated``: every skip passes an attention gate driven by the
    coarser decoder state first (Attention UNet)."""

    def __init__(self, in_channels: int, num_classes: int, width: int, block,
                 gated: bool = False) -> None:
        super().__init__(in_channels, width, block)
        c = self.channels
        self.gated = gated
        if gated:
            self.gates = nn.ModuleList(AttentionGate(c[i], c[i + 1], max(c[i] // 2, 1))
                                       for i in range(4))
        self.ups = nn.ModuleList(conv_bn_relu(c[i + 1], c[i]) for i in range(4))
        self.decoders = nn.ModuleList(block(2 * c[i], c[i]) for i in range(4))
        self.head = nn.Conv2d(c[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        for i in reversed(range(4)):
            skip = self.gates[i](feats[i], y) if self.gated else feats[i]
            y = self.ups[i](upsample_to(y, skip))
            y = self.decoders[i](torch.cat([skip, y], dim=1))
        return self.head(y)


class AttentionUNet(SkipUNet):
    """UNet with attention-gated skip connections (Oktay et al. 2018), 2-D."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__(in_channels, num_classes, width, DoubleConv, gated=True)


# -- UNet++ -----------------------------------------------------------------------------------
class UNetPlusPlus(PlainEncoderUNet):
    """Nested UNet (Zhou et al. 2018): node X[i][j] convolves the concatenation of all earlier
    nodes of row i and the up-sampled X[i+1][j-1]. ``deep_supervision`` averages the logits of
    the four top-row heads (the paper's "accurate mode"); off, only X[0][4] is read out."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 32,
                 deep_supervision: bool = False) -> None:
        super().__init__(in_channels, width, DoubleConv)
        c = self.channels
        # nodes[(i, j)] for j >= 1: inputs j * c[i] (row i so far) + c[i+1] (from below)
        self.nodes = nn.ModuleDict()
        for j in range(1, 5):
            for i in range(5 - j):
                self.nodes[f"{i}_{j}"] = DoubleConv(j * c[i] + c[i + 1], c[i])
        self.deep_supervision = deep_supervision
        n_heads = 4 if deep_supervision else 1
        self.heads = nn.ModuleList(nn.Conv2d(c[0], num_classes, 1) for _ in range(n_heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = [[f] for f in self.encoder(x)]
        for j in range(1, 5):
            for i in range(5 - j):
                below = upsample_to(rows[i + 1][j - 1], rows[i][0])
                rows[i].append(self.nodes[f"{i}_{j}"](torch.cat(rows[i] + [below], dim=1)))
        if self.deep_supervision:
            return torch.stack([h(f) for h, f in zip(self.heads, rows[0][1:])]).mean(0)
        return self.heads[0](rows[0][4])


# -- UNet 3+ ----------------------------------------------------------------------------------
class UNet3Plus(PlainEncoderUNet):
    """UNet 3+ (Huang et al. 2020) with full-scale skip connections: every decoder stage takes
    all shallower encoder stages (max-pooled down), its own encoder stage and all deeper
    decoder stages (bilinear up), each reduced to ``width`` channels, concatenated (5 *
    width) and fused by a 3x3 convolution. Without the paper's deep supervision and
    classification-guided module, which need a multi-output loss."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__(in_channels, width, DoubleConv)
        c = self.channels
        cat, fused = width, 5 * width
        # decoder stage d (3 down to 0) reads: encoders 0..d, then decoders d+1..3 and the
        # bottom encoder stage 4, which plays the role of decoder stage 4.
        self.branches = nn.ModuleDict()
        for d in range(4):
            for src in range(5):
                cin = c[src] if src <= d or src == 4 else fused
                self.branches[f"{d}_{src}"] = conv_bn_relu(cin, cat)
        self.fuse = nn.ModuleList(conv_bn_relu(fused, fused) for _ in range(4))
        self.head = nn.Conv2d(fused, num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.encoder(x)
        dec: dict[int, torch.Tensor] = {4: enc[4]}
        for d in reversed(range(4)):
            ref = enc[d]
            parts = []
            for src in range(5):
                if src < d:  # shallower encoder stage: max-pool down to this scale
                    f = F.max_pool2d(enc[src], 2 ** (d - src), ceil_mode=True)
                elif src == d:
                    f = enc[d]
                else:  # deeper decoder stage (or the bottleneck): up-sample
                    f = upsample_to(dec[src], ref)
                parts.append(self.branches[f"{d}_{src}"](f))
            dec[d] = self.fuse[d](torch.cat(parts, dim=1))
        return self.head(dec[0])


# -- R2U-Net ----------------------------------------------------------------------------------
class RecurrentConv(nn.Module):
    """Recurrent convolutional layer unfolded for t steps with shared weights:
    h(0) = f(x), h(k) = f(x + h(k-1))."""

    def __init__(self, channels: int, t: int = 2) -> None:
        super().__init__()
        self.t = t
        self.conv = conv_bn_relu(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        for _ in range(self.t):
            h = self.conv(x + h)
        return h


class RRCNNBlock(nn.Module):
    """Recurrent residual unit of R2U-Net: 1x1 projection, two recurrent layers, residual."""

    def __init__(self, cin: int, cout: int, t: int = 2) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1)
        self.body = nn.Sequential(RecurrentConv(cout, t), RecurrentConv(cout, t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return x + self.body(x)


class R2UNet(SkipUNet):
    """Recurrent residual UNet (Alom et al. 2018), t = 2 recurrent steps."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64,
                 t: int = 2) -> None:
        super().__init__(in_channels, num_classes, width, lambda i, o: RRCNNBlock(i, o, t))


# -- Deep residual UNet (ResUNet) -------------------------------------------------------------
class PreActResidualUnit(nn.Module):
    """BN-ReLU-Conv x2 with an identity (or strided 1x1 projection) shortcut (He et al. 2016's
    pre-activation unit, as ResUNet uses it)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=False),
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False))
        self.shortcut = (nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class ResUNet(nn.Module):
    """Deep residual UNet (Zhang, Liu, Wang 2018), Table I: three encoder levels and a bridge
    (channels width, 2, 4, 8 x width; down-sampling by stride-2 convolutions), three decoder
    levels of up-sampling, concatenation and a residual unit. ``width=64`` is the paper's
    7.8M-parameter network."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__()
        c = stage_channels(width, 4)
        # level 1: conv - BN - ReLU - conv, with a projected input as its shortcut
        self.level1 = nn.Sequential(
            nn.Conv2d(in_channels, c[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True),
            nn.Conv2d(c[0], c[0], 3, padding=1, bias=False))
        self.level1_shortcut = nn.Sequential(nn.Conv2d(in_channels, c[0], 1, bias=False),
                                             nn.BatchNorm2d(c[0]))
        self.down = nn.ModuleList(PreActResidualUnit(c[i], c[i + 1], stride=2) for i in range(3))
        self.decoders = nn.ModuleList(PreActResidualUnit(c[i + 1] + c[i], c[i])
                                      for i in range(3))
        self.head = nn.Conv2d(c[0], num_classes, 1)
        self.encoder_channels = c[3]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.level1(x) + self.level1_shortcut(x)]
        for unit in self.down:
            feats.append(unit(feats[-1]))
        return feats

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The bridge: (B, 8*width, H/8, W/8)."""
        return self.features(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.features(x)
        y = feats[-1]
        for i in reversed(range(3)):
            y = self.decoders[i](torch.cat([upsample_to(y, feats[i]), feats[i]], dim=1))
        return self.head(y)


# -- Dense UNet -------------------------------------------------------------------------------
class DenseLayer(nn.Module):
    """DenseNet-BC layer: BN-ReLU-1x1 (4k) - BN-ReLU-3x3 (k), output concatenated."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=False),
            nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True),
            nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def dense_block(cin: int, growth: int, n_layers: int) -> tuple[nn.Sequential, int]:
    layers = [DenseLayer(cin + i * growth, growth) for i in range(n_layers)]
    return nn.Sequential(*layers), cin + n_layers * growth


class DenseUNet(nn.Module):
    """The 2-D DenseUNet of H-DenseUNet (Li et al. 2018): a DenseNet encoder (here the
    DenseNet-121 layout, blocks of 6, 12, 24, 16 layers; the paper uses DenseNet-161) and a
    decoder of five up-sampling stages, each bilinear x2, summed with the encoder feature of
    that scale (1x1-projected to the decoder's channels), then 3x3 conv-BN-ReLU.

    ``width`` is the stem's channel count; growth rate = width / 2, so width 64 is
    DenseNet-121 (growth 32)."""

    BLOCKS = (6, 12, 24, 16)

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__()
        if width < 2:
            raise ValueError(f"width must be >= 2, got {width}")
        growth = width // 2
        self.stem = conv_bn_relu(in_channels, width, kernel=7, stride=2)
        # blocks[i] runs at scale 1/4, 1/8, 1/16, 1/32; transitions (BN-ReLU-1x1 halving the
        # channels) follow the first three and their output, before 2x2 average pooling, is
        # the skip of that scale
        self.blocks, self.transitions = nn.ModuleList(), nn.ModuleList()
        skip_channels, ch = [width], width
        for i, n in enumerate(self.BLOCKS):
            block, ch = dense_block(ch, growth, n)
            self.blocks.append(block)
            if i < len(self.BLOCKS) - 1:
                self.transitions.append(nn.Sequential(
                    nn.BatchNorm2d(ch), nn.ReLU(inplace=False),
                    nn.Conv2d(ch, ch // 2, 1, bias=False)))
                ch //= 2
                skip_channels.append(ch)
        self.final = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(inplace=True))
        self.encoder_channels = ch
        # decoder channels from deep to shallow: the paper's 768, 384, 96, 96, 64 are about
        # 1/3, 1/6, width, width and 2/3 width of DenseNet-161 (2208 out, stem 96)
        dec = [max(ch // 3, 1), max(ch // 6, 1), width, width, max(width * 2 // 3, 1)]
        skips_deep_first = list(reversed(skip_channels)) + [None]  # 1/16, 1/8, 1/4, 1/2, -
        self.lateral = nn.ModuleList()
        self.decoder = nn.ModuleList()
        prev = ch
        for cskip, cout in zip(skips_deep_first, dec):
            if cskip is not None:
                self.lateral.append(nn.Conv2d(cskip, prev, 1, bias=False))
            self.decoder.append(conv_bn_relu(prev, cout))
            prev = cout
        self.head = nn.Conv2d(prev, num_classes, 1)

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Skips at scales 1/2, 1/4, 1/8, 1/16 and the deepest features at 1/32."""
        y = self.stem(x)
        skips = [y]
        y = F.max_pool2d(y, 3, stride=2, padding=1)
        for i, block in enumerate(self.blocks):
            y = block(y)
            if i < len(self.transitions):
                y = self.transitions[i](y)
                skips.append(y)
                y = F.avg_pool2d(y, 2)
        return skips, self.final(y)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H/32, W/32), C = the last dense block's output channels."""
        return self.features(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, y = self.features(x)
        for k, conv in enumerate(self.decoder):
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            if k < len(self.lateral):
                y = y + self.lateral[k](skips[-1 - k])
            y = conv(y)
        return self.head(y)


# -- MultiResUNet -----------------------------------------------------------------------------
class MultiResBlock(nn.Module):
    """MultiRes block (Ibtehaz & Rahman 2020): three chained 3x3 convolutions with W/6, W/3
    and W/2 filters (a cheap 3x3 / 5x5 / 7x7), concatenated, plus a 1x1 shortcut; W = 1.67 U."""

    def __init__(self, cin: int, u: int, alpha: float = 1.67) -> None:
        super().__init__()
        w = alpha * u
        c1, c2, c3 = int(w / 6), int(w / 3), int(w / 2)
        c1, c2, c3 = max(c1, 1), max(c2, 1), max(c3, 1)
        self.out_channels = c1 + c2 + c3
        self.conv1 = conv_bn_relu(cin, c1)
        self.conv2 = conv_bn_relu(c1, c2)
        self.conv3 = conv_bn_relu(c2, c3)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, self.out_channels, 1, bias=False),
                                      nn.BatchNorm2d(self.out_channels))
        self.bn = nn.BatchNorm2d(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        b = self.conv2(a)
        c = self.conv3(b)
        return F.relu(self.bn(torch.cat([a, b, c], dim=1) + self.shortcut(x)))


class ResPath(nn.Module):
    """Res path: ``length`` residual 3x3 conv units (with 1x1 shortcuts) on a skip connection,
    to narrow the semantic gap between encoder and decoder features."""

    def __init__(self, channels: int, length: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
            for _ in range(length))
        self.shortcuts = nn.ModuleList(nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
            for _ in range(length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, short in zip(self.convs, self.shortcuts):
            x = F.relu(conv(x) + short(x))
        return x


class MultiResUNet(nn.Module):
    """MultiResUNet (Ibtehaz & Rahman 2020): MultiRes blocks for the UNet's double
    convolutions and Res paths (lengths 4, 3, 2, 1) on the skips. ``width`` is U of the first
    stage; the paper's network is width 32."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 32) -> None:
        super().__init__()
        u = stage_channels(width)
        self.enc = nn.ModuleList()
        cin, enc_out = in_channels, []
        for i in range(5):
            block = MultiResBlock(cin, u[i])
            self.enc.append(block)
            cin = block.out_channels
            enc_out.append(cin)
        self.paths = nn.ModuleList(ResPath(enc_out[i], 4 - i) for i in range(4))
        prev = enc_out[4]
        dec_blocks: list[MultiResBlock] = [None] * 4  # type: ignore[list-item]
        ups: list[nn.Module] = [None] * 4  # type: ignore[list-item]
        for i in reversed(range(4)):
            ups[i] = nn.ConvTranspose2d(prev, u[i], 2, stride=2)
            dec_blocks[i] = MultiResBlock(u[i] + enc_out[i], u[i])
            prev = dec_blocks[i].out_channels
        self.ups = nn.ModuleList(ups)
        self.dec = nn.ModuleList(dec_blocks)
        self.head = nn.Conv2d(prev, num_classes, 1)
        self.encoder_channels = enc_out[4]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        return feats

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H/16, W/16), C ~ 1.67 * 16 * width."""
        return self.features(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.features(x)
        y = feats[-1]
        for i in reversed(range(4)):
            y = self.ups[i](y)
            y = self.dec[i](torch.cat([y, self.paths[i](feats[i])], dim=1))
        return self.head(y)


WIDTH_SPACE = {"width": ("categorical", [16, 32, 64])}

MODELS = [
    ModelSpec(
        "attention-unet", AttentionUNet, family="unet",
        description="UNet with additive attention gates on the skips (channels w..16w)",
        citation="Oktay et al. Attention U-Net: Learning Where to Look for the Pancreas. "
                 "MIDL 2018 (arXiv:1804.03999)",
        tags=("unet", "attention"), input_multiple=16, min_size=32, has_encoder=True,
        defaults={"width": 64}, search_space=WIDTH_SPACE),
    ModelSpec(
        "unet-plusplus", UNetPlusPlus, family="unet",
        description="UNet++: nested dense skip pathways (channels w..16w, paper w=32)",
        citation="Zhou, Rahman Siddiquee, Tajbakhsh, Liang. UNet++: A Nested U-Net "
                 "Architecture for Medical Image Segmentation. DLMIA 2018",
        tags=("unet", "nested"), input_multiple=16, min_size=32, has_encoder=True,
        defaults={"width": 32, "deep_supervision": False},
        search_space={**WIDTH_SPACE, "deep_supervision": ("categorical", [False, True])}),
    ModelSpec(
        "unet-3plus", UNet3Plus, family="unet",
        description="UNet 3+: full-scale skip connections (channels w..16w, 5w per decoder)",
        citation="Huang et al. UNet 3+: A Full-Scale Connected UNet for Medical Image "
                 "Segmentation. ICASSP 2020",
        tags=("unet", "full-scale"), input_multiple=16, min_size=32, has_encoder=True,
        defaults={"width": 64}, search_space=WIDTH_SPACE),
    ModelSpec(
        "r2-unet", R2UNet, family="unet",
        description="R2U-Net: recurrent residual convolutional units, t=2 (channels w..16w)",
        citation="Alom, Hasan, Yakopcic, Taha, Asari. Recurrent Residual Convolutional Neural "
                 "Network based on U-Net (R2U-Net) for Medical Image Segmentation. "
                 "arXiv:1802.06955, 2018",
        tags=("unet", "recurrent", "residual"), input_multiple=16, min_size=32,
        has_encoder=True, defaults={"width": 64, "t": 2},
        search_space={**WIDTH_SPACE, "t": ("int", 1, 3)}),
    ModelSpec(
        "res-unet", ResUNet, family="unet",
        description="Deep residual UNet: pre-activation residual units, 3 levels + bridge "
                    "(channels w..8w)",
        citation="Zhang, Liu, Wang. Road Extraction by Deep Residual U-Net. IEEE Geoscience "
                 "and Remote Sensing Letters 15(5), 2018",
        tags=("unet", "residual"), input_multiple=8, min_size=16, has_encoder=True,
        defaults={"width": 64}, search_space=WIDTH_SPACE),
    ModelSpec(
        "dense-unet", DenseUNet, family="unet",
        description="2-D DenseUNet: DenseNet-121-layout encoder (growth w/2), 5 up-sampling "
                    "stages with additive skips",
        citation="Li, Chen, Qi, Dou, Fu, Heng. H-DenseUNet: Hybrid Densely Connected UNet for "
                 "Liver and Tumor Segmentation from CT Volumes. IEEE TMI 37(12), 2018",
        tags=("unet", "dense"), input_multiple=32, min_size=32, has_encoder=True,
        defaults={"width": 64}, search_space=WIDTH_SPACE),
    ModelSpec(
        "multires-unet", MultiResUNet, family="unet",
        description="MultiResUNet: MultiRes blocks and Res paths (U = w..16w, paper w=32)",
        citation="Ibtehaz, Rahman. MultiResUNet: Rethinking the U-Net Architecture for "
                 "Multimodal Biomedical Image Segmentation. Neural Networks 121, 2020",
        tags=("unet", "multi-resolution"), input_multiple=16, min_size=32, has_encoder=True,
        defaults={"width": 32}, search_space=WIDTH_SPACE),
]
