"""Classic encoder-decoders in Jittor: :mod:`jmedbench_zoo.encoder_decoders` layer for layer
(FCN-8s, SegNet, LinkNet, ENet, ERFNet). Docstrings and citations live with the torch
versions."""

from __future__ import annotations

import jittor as jt
from jittor import nn

from jmedbench_jittor.layers import BatchNorm2d, check_width, max_pool, resize_bilinear

VGG16_STAGES = (2, 2, 3, 3, 3)
VGG16_MULT = (1, 2, 4, 8, 8)


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         BatchNorm2d(cout), nn.ReLU())


def vgg_stage(cin: int, cout: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[conv_bn_relu(cin if i == 0 else cout, cout) for i in range(n)])


def unpool(x, indices, size):
    return nn.MaxUnpool2d(2, 2)(x, indices, output_size=tuple(int(s) for s in size))


# -- FCN-8s -----------------------------------------------------------------------------------
class FCN8s(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64,
                 dropout: float = 0.5) -> None:
        super().__init__()
        check_width(width)
        chans = [width * m for m in VGG16_MULT]
        cins = [in_channels] + chans[:-1]
        self.stages = nn.ModuleList([vgg_stage(ci, co, n)
                                     for ci, co, n in zip(cins, chans, VGG16_STAGES)])
        fc = 16 * width
        self.fc = nn.Sequential(
            nn.Conv2d(chans[4], fc, 3, padding=1), nn.ReLU(), nn.Dropout2d(dropout),
            nn.Conv2d(fc, fc, 1), nn.ReLU(), nn.Dropout2d(dropout))
        self.score_fr = nn.Conv2d(fc, num_classes, 1)
        self.score_pool4 = nn.Conv2d(chans[3], num_classes, 1)
        self.score_pool3 = nn.Conv2d(chans[2], num_classes, 1)
        self.up2_fr = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
        self.up2_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
        self.encoder_channels = fc

    def features(self, x):
        pools = []
        for stage in self.stages:
            x = max_pool(stage(x), 2)
            pools.append(x)
        return pools

    def encode(self, x):
        return self.fc(self.features(x)[-1])

    def execute(self, x):
        pools = self.features(x)
        y = self.up2_fr(self.score_fr(self.fc(pools[4]))) + self.score_pool4(pools[3])
        y = self.up2_pool4(y) + self.score_pool3(pools[2])
        return resize_bilinear(y, x.shape[-2:])


# -- SegNet -----------------------------------------------------------------------------------
class SegNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 64) -> None:
        super().__init__()
        check_width(width)
        chans = [width * m for m in VGG16_MULT]
        cins = [in_channels] + chans[:-1]
        self.enc = nn.ModuleList([vgg_stage(ci, co, n)
                                  for ci, co, n in zip(cins, chans, VGG16_STAGES)])
        self.dec = nn.ModuleList()
        for i, n in enumerate(VGG16_STAGES):
            cout = chans[i - 1] if i > 0 else chans[0]
            convs = [conv_bn_relu(chans[i], chans[i]) for _ in range(n - 1)]
            convs.append(conv_bn_relu(chans[i], cout))
            self.dec.append(nn.Sequential(*convs))
        self.head = nn.Conv2d(chans[0], num_classes, 3, padding=1)
        self.encoder_channels = chans[4]

    def encode_with_indices(self, x):
        pooled = []
        for stage in self.enc:
            x = stage(x)
            size = x.shape[-2:]
            x, idx = max_pool(x, 2, return_indices=True)
            pooled.append((idx, size))
        return x, pooled

    def encode(self, x):
        return self.encode_with_indices(x)[0]

    def execute(self, x):
        y, pooled = self.encode_with_indices(x)
        for i in reversed(range(5)):
            idx, size = pooled[i]
            y = self.dec[i](unpool(y, idx, size))
        return self.head(y)


# -- LinkNet ----------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                   BatchNorm2d(cout))
        self.shortcut = (nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), BatchNorm2d(cout)))

    def execute(self, x):
        return nn.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class LinkNetDecoder(nn.Module):
    def __init__(self, m: int, n: int, upsample: bool = True) -> None:
        super().__init__()
        q = max(m // 4, 1)
        middle = (nn.ConvTranspose2d(q, q, 3, stride=2, padding=1, output_padding=1, bias=False)
                  if upsample else nn.Conv2d(q, q, 3, padding=1, bias=False))
        self.body = nn.Sequential(conv_bn_relu(m, q, 1), middle, BatchNorm2d(q), nn.ReLU(),
                                  conv_bn_relu(q, n, 1))

    def execute(self, x):
        return self.body(x)


class LinkNet(nn.Module):
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
        self.decoders = nn.ModuleList([LinkNetDecoder(c[i], c[i - 1] if i > 0 else c[0],
                                                      upsample=i > 0) for i in range(4)])
        half = max(width // 2, 1)
        self.final = nn.Sequential(
            nn.ConvTranspose2d(c[0], half, 3, stride=2, padding=1, output_padding=1,
                               bias=False),
            BatchNorm2d(half), nn.ReLU(),
            conv_bn_relu(half, half, 3),
            nn.ConvTranspose2d(half, num_classes, 2, stride=2))
        self.encoder_channels = c[3]

    def features(self, x):
        x = max_pool(self.stem(x), 3, stride=2, padding=1)
        feats = []
        for enc in self.encoders:
            x = enc(x)
            feats.append(x)
        return feats

    def encode(self, x):
        return self.features(x)[-1]

    def execute(self, x):
        feats = self.features(x)
        y = feats[3]
        for i in reversed(range(4)):
            y = self.decoders[i](y)
            if i > 0:
                y = y + feats[i - 1]
        return self.final(y)


# -- ENet -------------------------------------------------------------------------------------
class InitialBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int = 16) -> None:
        super().__init__()
        if in_channels >= out_channels:
            raise ValueError(f"ENet's initial block needs fewer than {out_channels} input "
                             f"channels, got {in_channels}")
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, 2, 1, bias=False)
        self.bn = BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def execute(self, x):
        return self.act(self.bn(jt.concat([self.conv(x), max_pool(x, 2)], dim=1)))


class ENetBottleneck(nn.Module):
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
            first, BatchNorm2d(mid), nn.PReLU(mid),
            middle, BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, cout, 1, bias=False), BatchNorm2d(cout),
            nn.Dropout2d(dropout))
        self.act = nn.PReLU(cout)

    def execute(self, x):
        indices = None
        main = x
        if self.downsample:
            main, indices = max_pool(x, 2, return_indices=True)
            if self.cout > self.cin:
                n, _, h, w = main.shape
                main = jt.concat([main, jt.zeros((n, self.cout - self.cin, h, w), main.dtype)],
                                 dim=1)
        return self.act(main + self.ext(x)), indices


class ENetUpsample(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float = 0.1) -> None:
        super().__init__()
        mid = cin // 4
        self.main = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), BatchNorm2d(cout))
        self.ext = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), BatchNorm2d(mid), nn.PReLU(mid),
            nn.ConvTranspose2d(mid, mid, 3, 2, 1, output_padding=1, bias=False),
            BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, cout, 1, bias=False), BatchNorm2d(cout), nn.Dropout2d(dropout))
        self.act = nn.PReLU(cout)

    def execute(self, x, indices, size):
        main = unpool(self.main(x), indices, size)
        return self.act(main + self.ext(x))


class ENet(nn.Module):
    STAGE23 = (("regular", 1), ("dilated", 2), ("asymmetric", 1), ("dilated", 4),
               ("regular", 1), ("dilated", 8), ("asymmetric", 1), ("dilated", 16))

    def __init__(self, in_channels: int = 1, num_classes: int = 3,
                 dropout: float = 0.1) -> None:
        super().__init__()
        d1 = dropout / 10
        self.initial = InitialBlock(in_channels, 16)
        self.down1 = ENetBottleneck(16, 64, downsample=True, dropout=d1)
        self.stage1 = nn.ModuleList([ENetBottleneck(64, 64, dropout=d1) for _ in range(4)])
        self.down2 = ENetBottleneck(64, 128, downsample=True, dropout=dropout)
        self.stage23 = nn.ModuleList([ENetBottleneck(128, 128, kind, dil, dropout=dropout)
                                      for _ in range(2) for kind, dil in self.STAGE23])
        self.up4 = ENetUpsample(128, 64, dropout)
        self.stage4 = nn.ModuleList([ENetBottleneck(64, 64, dropout=dropout) for _ in range(2)])
        self.up5 = ENetUpsample(64, 16, dropout)
        self.stage5 = ENetBottleneck(16, 16, dropout=dropout)
        self.full_conv = nn.ConvTranspose2d(16, num_classes, 3, 2, 1, output_padding=1)
        self.encoder_channels = 128

    def _encode(self, x):
        x0 = self.initial(x)
        x1, idx1 = self.down1(x0)
        for block in self.stage1:
            x1, _ = block(x1)
        x2, idx2 = self.down2(x1)
        for block in self.stage23:
            x2, _ = block(x2)
        return x2, (idx1, x0.shape[-2:]), (idx2, x1.shape[-2:])

    def encode(self, x):
        return self._encode(x)[0]

    def execute(self, x):
        y, (idx1, size1), (idx2, size2) = self._encode(x)
        y = self.up4(y, idx2, size2)
        for block in self.stage4:
            y, _ = block(y)
        y = self.up5(y, idx1, size1)
        y, _ = self.stage5(y)
        return self.full_conv(y)


# -- ERFNet -----------------------------------------------------------------------------------
class DownsamplerBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout - cin, 3, stride=2, padding=1, bias=False)
        self.bn = BatchNorm2d(cout, eps=1e-3)

    def execute(self, x):
        return nn.relu(self.bn(jt.concat([self.conv(x), max_pool(x, 2)], dim=1)))


class NonBottleneck1D(nn.Module):
    def __init__(self, channels: int, dilation: int, dropout: float) -> None:
        super().__init__()
        d = dilation
        self.conv3x1_1 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1), bias=False)
        self.bn1 = BatchNorm2d(channels, eps=1e-3)
        self.conv3x1_2 = nn.Conv2d(channels, channels, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.conv1x3_2 = nn.Conv2d(channels, channels, (1, 3), padding=(0, d), dilation=(1, d),
                                   bias=False)
        self.bn2 = BatchNorm2d(channels, eps=1e-3)
        self.dropout = nn.Dropout2d(dropout)

    def execute(self, x):
        y = nn.relu(self.conv3x1_1(x))
        y = nn.relu(self.bn1(self.conv1x3_1(y)))
        y = nn.relu(self.conv3x1_2(y))
        y = self.dropout(self.bn2(self.conv1x3_2(y)))
        return nn.relu(y + x)


class UpsamplerBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False),
            BatchNorm2d(cout, eps=1e-3), nn.ReLU())


class ERFNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3,
                 dropout: float = 0.3) -> None:
        super().__init__()
        d64 = dropout / 10
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

    def encode(self, x):
        return self.encoder(x)

    def execute(self, x):
        return self.decoder(self.encoder(x))
