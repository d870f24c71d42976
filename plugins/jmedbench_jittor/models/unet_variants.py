"""The UNet family in Jittor: :mod:`jmedbench_zoo.unet_variants` layer for layer (attention
gates, nested and full-scale skips, recurrent-residual, residual and multi-resolution blocks).
Docstrings and citations live with the torch versions."""

from __future__ import annotations

import jittor as jt
from jittor import nn

from jmedbench_jittor.layers import (BatchNorm2d, DoubleConv, ModuleDict, conv_bn_relu,
                                     max_pool, resize_bilinear, stage_channels, upsample_to)


class PlainEncoder(nn.Module):
    def __init__(self, in_channels: int, channels: list[int], block) -> None:
        super().__init__()
        cins = [in_channels] + channels[:-1]
        self.blocks = nn.ModuleList([block(cin, cout) for cin, cout in zip(cins, channels)])

    def execute(self, x):
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else max_pool(x, 2))
            feats.append(x)
        return feats


# -- Attention UNet ---------------------------------------------------------------------------
class AttentionGate(nn.Module):
    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta_x = nn.Conv2d(skip_channels, inter_channels, 2, stride=2, bias=False)
        self.phi_g = nn.Conv2d(gate_channels, inter_channels, 1, bias=True)
        self.psi = nn.Conv2d(inter_channels, 1, 1, bias=True)
        self.out = nn.Sequential(nn.Conv2d(skip_channels, skip_channels, 1, bias=False),
                                 BatchNorm2d(skip_channels))

    def execute(self, x, g):
        theta = self.theta_x(x)
        phi = resize_bilinear(self.phi_g(g), theta.shape[-2:])
        alpha = jt.sigmoid(self.psi(nn.relu(theta + phi)))
        return self.out(x * upsample_to(alpha, x))


class AttentionUNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__()
        c = stage_channels(width)
        self.encoder = PlainEncoder(in_channels, c, DoubleConv)
        self.gates = nn.ModuleList([AttentionGate(c[i], c[i + 1], max(c[i] // 2, 1))
                                    for i in range(4)])
        self.ups = nn.ModuleList([conv_bn_relu(c[i + 1], c[i]) for i in range(4)])
        self.decoders = nn.ModuleList([DoubleConv(2 * c[i], c[i]) for i in range(4)])
        self.head = nn.Conv2d(c[0], num_classes, 1)
        self.encoder_channels = c[4]

    def encode(self, x):
        return self.encoder(x)[-1]

    def execute(self, x):
        feats = self.encoder(x)
        y = feats[-1]
        for i in reversed(range(4)):
            skip = self.gates[i](feats[i], y)
            y = self.ups[i](upsample_to(y, skip))
            y = self.decoders[i](jt.concat([skip, y], dim=1))
        return self.head(y)


# -- UNet++ -----------------------------------------------------------------------------------
class UNetPlusPlus(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 32,
                 deep_supervision: bool = False) -> None:
        super().__init__()
        c = stage_channels(width)
        self.encoder = PlainEncoder(in_channels, c, DoubleConv)
        self.nodes = ModuleDict()
        for j in range(1, 5):
            for i in range(5 - j):
                self.nodes[f"{i}_{j}"] = DoubleConv(j * c[i] + c[i + 1], c[i])
        self.deep_supervision = deep_supervision
        n_heads = 4 if deep_supervision else 1
        self.heads = nn.ModuleList([nn.Conv2d(c[0], num_classes, 1) for _ in range(n_heads)])
        self.encoder_channels = c[4]

    def encode(self, x):
        return self.encoder(x)[-1]

    def execute(self, x):
        rows = [[f] for f in self.encoder(x)]
        for j in range(1, 5):
            for i in range(5 - j):
                below = upsample_to(rows[i + 1][j - 1], rows[i][0])
                rows[i].append(self.nodes[f"{i}_{j}"](jt.concat(rows[i] + [below], dim=1)))
        if self.deep_supervision:
            return jt.stack([h(f) for h, f in zip(self.heads, rows[0][1:])]).mean(0)
        return self.heads[0](rows[0][4])


# -- UNet 3+ ----------------------------------------------------------------------------------
class UNet3Plus(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__()
        c = stage_channels(width)
        self.encoder = PlainEncoder(in_channels, c, DoubleConv)
        cat, fused = width, 5 * width
        self.branches = ModuleDict()
        for d in range(4):
            for src in range(5):
                cin = c[src] if src <= d or src == 4 else fused
                self.branches[f"{d}_{src}"] = conv_bn_relu(cin, cat)
        self.fuse = nn.ModuleList([conv_bn_relu(fused, fused) for _ in range(4)])
        self.head = nn.Conv2d(fused, num_classes, 3, padding=1)
        self.encoder_channels = c[4]

    def encode(self, x):
        return self.encoder(x)[-1]

    def execute(self, x):
        enc = self.encoder(x)
        dec = {4: enc[4]}
        for d in reversed(range(4)):
            ref = enc[d]
            parts = []
            for src in range(5):
                if src < d:
                    f = max_pool(enc[src], 2 ** (d - src), ceil_mode=True)
                elif src == d:
                    f = enc[d]
                else:
                    f = upsample_to(dec[src], ref)
                parts.append(self.branches[f"{d}_{src}"](f))
            dec[d] = self.fuse[d](jt.concat(parts, dim=1))
        return self.head(dec[0])


# -- R2U-Net ----------------------------------------------------------------------------------
class RecurrentConv(nn.Module):
    def __init__(self, channels: int, t: int = 2) -> None:
        super().__init__()
        self.t = t
        self.conv = conv_bn_relu(channels, channels)

    def execute(self, x):
        h = self.conv(x)
        for _ in range(self.t):
            h = self.conv(x + h)
        return h


class RRCNNBlock(nn.Module):
    def __init__(self, cin: int, cout: int, t: int = 2) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1)
        self.body = nn.Sequential(RecurrentConv(cout, t), RecurrentConv(cout, t))

    def execute(self, x):
        x = self.proj(x)
        return x + self.body(x)


class R2UNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64,
                 t: int = 2) -> None:
        super().__init__()
        c = stage_channels(width)
        self.encoder = PlainEncoder(in_channels, c, lambda i, o: RRCNNBlock(i, o, t))
        self.ups = nn.ModuleList([conv_bn_relu(c[i + 1], c[i]) for i in range(4)])
        self.decoders = nn.ModuleList([RRCNNBlock(2 * c[i], c[i], t) for i in range(4)])
        self.head = nn.Conv2d(c[0], num_classes, 1)
        self.encoder_channels = c[4]

    def encode(self, x):
        return self.encoder(x)[-1]

    def execute(self, x):
        feats = self.encoder(x)
        y = feats[-1]
        for i in reversed(range(4)):
            y = self.ups[i](upsample_to(y, feats[i]))
            y = self.decoders[i](jt.concat([feats[i], y], dim=1))
        return self.head(y)


# -- Deep residual UNet (ResUNet) -------------------------------------------------------------
class PreActResidualUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            BatchNorm2d(cin), nn.ReLU(),
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False))
        self.shortcut = (nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), BatchNorm2d(cout)))

    def execute(self, x):
        return self.body(x) + self.shortcut(x)


class ResUNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__()
        c = stage_channels(width, 4)
        self.level1 = nn.Sequential(
            nn.Conv2d(in_channels, c[0], 3, padding=1, bias=False),
            BatchNorm2d(c[0]), nn.ReLU(),
            nn.Conv2d(c[0], c[0], 3, padding=1, bias=False))
        self.level1_shortcut = nn.Sequential(nn.Conv2d(in_channels, c[0], 1, bias=False),
                                             BatchNorm2d(c[0]))
        self.down = nn.ModuleList([PreActResidualUnit(c[i], c[i + 1], stride=2)
                                   for i in range(3)])
        self.decoders = nn.ModuleList([PreActResidualUnit(c[i + 1] + c[i], c[i])
                                       for i in range(3)])
        self.head = nn.Conv2d(c[0], num_classes, 1)
        self.encoder_channels = c[3]

    def features(self, x):
        feats = [self.level1(x) + self.level1_shortcut(x)]
        for unit in self.down:
            feats.append(unit(feats[-1]))
        return feats

    def encode(self, x):
        return self.features(x)[-1]

    def execute(self, x):
        feats = self.features(x)
        y = feats[-1]
        for i in reversed(range(3)):
            y = self.decoders[i](jt.concat([upsample_to(y, feats[i]), feats[i]], dim=1))
        return self.head(y)


# -- MultiResUNet -----------------------------------------------------------------------------
class MultiResBlock(nn.Module):
    def __init__(self, cin: int, u: int, alpha: float = 1.67) -> None:
        super().__init__()
        w = alpha * u
        c1, c2, c3 = max(int(w / 6), 1), max(int(w / 3), 1), max(int(w / 2), 1)
        self.out_channels = c1 + c2 + c3
        self.conv1 = conv_bn_relu(cin, c1)
        self.conv2 = conv_bn_relu(c1, c2)
        self.conv3 = conv_bn_relu(c2, c3)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, self.out_channels, 1, bias=False),
                                      BatchNorm2d(self.out_channels))
        self.bn = BatchNorm2d(self.out_channels)

    def execute(self, x):
        a = self.conv1(x)
        b = self.conv2(a)
        c = self.conv3(b)
        return nn.relu(self.bn(jt.concat([a, b, c], dim=1) + self.shortcut(x)))


class ResPath(nn.Module):
    def __init__(self, channels: int, length: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), BatchNorm2d(channels))
            for _ in range(length)])
        self.shortcuts = nn.ModuleList([nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False), BatchNorm2d(channels))
            for _ in range(length)])

    def execute(self, x):
        for conv, short in zip(self.convs, self.shortcuts):
            x = nn.relu(conv(x) + short(x))
        return x


class MultiResUNet(nn.Module):
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
        self.paths = nn.ModuleList([ResPath(enc_out[i], 4 - i) for i in range(4)])
        prev = enc_out[4]
        dec_blocks: list = [None] * 4
        ups: list = [None] * 4
        for i in reversed(range(4)):
            ups[i] = nn.ConvTranspose2d(prev, u[i], 2, stride=2)
            dec_blocks[i] = MultiResBlock(u[i] + enc_out[i], u[i])
            prev = dec_blocks[i].out_channels
        self.ups = nn.ModuleList(ups)
        self.dec = nn.ModuleList(dec_blocks)
        self.head = nn.Conv2d(prev, num_classes, 1)
        self.encoder_channels = enc_out[4]

    def features(self, x):
        feats = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else max_pool(x, 2))
            feats.append(x)
        return feats

    def encode(self, x):
        return self.features(x)[-1]

    def execute(self, x):
        feats = self.features(x)
        y = feats[-1]
        for i in reversed(range(4)):
            y = self.ups[i](y)
            y = self.dec[i](jt.concat([y, self.paths[i](feats[i])], dim=1))
        return self.head(y)
