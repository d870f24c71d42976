"""Transformer models: TransUNet, UNETR (2-D), Swin-UNet and SegFormer.

All four are compact implementations whose sizes follow ``width`` (the papers' ViT-B / Swin-T /
MiT-b0 sizes are far beyond a CPU benchmark for the first two; SegFormer at width 32 and
Swin-UNet at width 48 are the papers' own sizes). Learned absolute position embeddings are
stored for a reference grid and interpolated to the grid of the actual input, so any size that
is a multiple of ``input_multiple`` works. Swin windows are clamped to the feature map and
feature maps are padded (the padding masked out of attention), so Swin-UNet needs no more
than a multiple of 32. No stochastic depth or dropout: runs stay deterministic and short.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from jmedbench.specs import ModelSpec

from ._building_blocks import ConvBNAct, timm_encoder, upsample_to


def init_transformer_weights(module: nn.Module) -> None:
    """ViT-style initialisation: truncated normal (std 0.02) linears, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def heads_for(dim: int, head_dim: int = 64) -> int:
    """Number of heads giving ``head_dim`` channels per head (at least one head)."""
    heads = max(1, dim // head_dim)
    while dim % heads:
        heads -= 1
    return heads


class Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class TransformerBlock(nn.Module):
    """Pre-norm ViT block."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PositionEmbedding(nn.Module):
    """Learned absolute position embedding on a reference grid, resized bilinearly to the
    token grid of the input (as timm does for ViTs at a new resolution)."""

    def __init__(self, dim: int, grid: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(1, dim, grid, grid))
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        table = self.table
        if table.shape[-2:] != (h, w):
            table = F.interpolate(table, size=(h, w), mode="bilinear", align_corners=False)
        return tokens + table.flatten(2).transpose(1, 2)


def to_map(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)


class UpBlock(nn.Module):
    """Bilinear x2 upsampling, optional skip concatenation, two 3x3 conv-BN-ReLU."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(ConvBNAct(cin + cskip, cout, 3), ConvBNAct(cout, cout, 3))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        if skip is not None:
            x = torch.cat([upsample_to(x, skip), skip], 1)
        return self.conv(x)


# -- TransUNet -------------------------------------------------------------------------------

class TransUNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 16,
                 depth: int = 12, encoder: str = "resnet18d", reference_size: int = 256) -> None:
        super().__init__()
        # CNN stages at strides 2, 4, 8, 16 (the paper's R50 stages 1-3 plus the stem);
        # no stride-32 stage is built.
        self.cnn = timm_encoder(encoder, in_channels, width, (0, 1, 2, 3), (2, 4, 8, 16))
        c2, c4, c8, c16 = self.cnn.feature_info.channels()
        hidden = 8 * width                  # the paper's ViT-B has 768
        self.embed = nn.Conv2d(c16, hidden, 1)   # patch size 1 on the stride-16 map
        self.position = PositionEmbedding(hidden, reference_size // 16)
        self.blocks = nn.Sequential(*(TransformerBlock(hidden, heads_for(hidden))
                                      for _ in range(depth)))
        self.norm = nn.LayerNorm(hidden)
        self.encoder_channels = hidden
        self.bridge = ConvBNAct(hidden, 8 * width, 3)
        d = (4 * width, 2 * width, width, max(4, width // 4))   # (256,128,64,16) at width 64
        self.up = nn.ModuleList([UpBlock(8 * width, c8, d[0]), UpBlock(d[0], c4, d[1]),
                                 UpBlock(d[1], c2, d[2]), UpBlock(d[2], 0, d[3])])
        self.head = nn.Conv2d(d[3], num_classes, 3, padding=1)
        init_transformer_weights(self.blocks)
        init_transformer_weights(self.norm)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        s2, s4, s8, s16 = self.cnn(x)
        h, w = s16.shape[-2:]
        tokens = self.embed(s16).flatten(2).transpose(1, 2)
        tokens = self.norm(self.blocks(self.position(tokens, h, w)))
        return to_map(tokens, h, w), [s8, s4, s2]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Transformer output as a map, (B, 8*width, H/16, W/16)."""
        return self._encode(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, skips = self._encode(x)
        y = self.bridge(y)
        for block, skip in zip(self.up, skips + [None]):
            y = block(y, skip)
        return self.head(upsample_to(y, x))


# -- UNETR -----------------------------------------------------------------------------------

class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(ConvBNAct(cin, cout, 3), ConvBNAct(cout, cout, 3))


class ProgressiveUp(nn.Module):
    """UNETR's path from a transformer layer to a decoder resolution: a transposed conv x2,
    then ``layers`` times (transposed conv x2, conv block)."""

    def __init__(self, cin: int, cout: int, layers: int) -> None:
        super().__init__()
        self.first = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.rest = nn.Sequential(*(nn.Sequential(nn.ConvTranspose2d(cout, cout, 2, stride=2),
                                                  ConvBlock(cout, cout)) for _ in range(layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.first(x))


class UNETRDecoderStage(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = ConvBlock(2 * cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], 1))


class UNETR(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 16,
                 depth: int = 12, patch_size: int = 16, reference_size: int = 256) -> None:
        super().__init__()
        if depth % 4:
            raise ValueError(f"UNETR depth must be a multiple of 4 (skips at 1/4, 2/4, 3/4), "
                             f"got {depth}")
        if patch_size != 16:
            raise ValueError("UNETR's decoder is built for patch size 16 (four x2 upsamplings)")
        f = width                           # the paper's feature size (16)
        hidden = 8 * width                  # the paper's ViT-B has 768
        self.patch_size = patch_size
        self.embed = nn.Conv2d(in_channels, hidden, patch_size, stride=patch_size)
        self.position = PositionEmbedding(hidden, reference_size // patch_size)
        self.blocks = nn.ModuleList(TransformerBlock(hidden, heads_for(hidden))
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(hidden)
        self.taps = (depth // 4 - 1, depth // 2 - 1, 3 * depth // 4 - 1)
        self.encoder_channels = hidden
        self.enc1 = ConvBlock(in_channels, f)
        self.enc2 = ProgressiveUp(hidden, 2 * f, 2)
        self.enc3 = ProgressiveUp(hidden, 4 * f, 1)
        self.enc4 = ProgressiveUp(hidden, 8 * f, 0)
        self.dec4 = UNETRDecoderStage(hidden, 8 * f)
        self.dec3 = UNETRDecoderStage(8 * f, 4 * f)
        self.dec2 = UNETRDecoderStage(4 * f, 2 * f)
        self.dec1 = UNETRDecoderStage(2 * f, f)
        self.head = nn.Conv2d(f, num_classes, 1)
        init_transformer_weights(self.blocks)
        init_transformer_weights(self.norm)

    def transformer(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Maps of layers depth/4, depth/2, 3*depth/4 and the last (normalised) layer."""
        tokens = self.embed(x)
        h, w = tokens.shape[-2:]
        tokens = self.position(tokens.flatten(2).transpose(1, 2), h, w)
        taps = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in self.taps:
                taps.append(to_map(tokens, h, w))
        taps.append(to_map(self.norm(tokens), h, w))
        return taps

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Last transformer layer as a map, (B, 8*width, H/16, W/16)."""
        return self.transformer(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z3, z6, z9, z12 = self.transformer(x)
        y = self.dec4(z12, self.enc4(z9))
        y = self.dec3(y, self.enc3(z6))
        y = self.dec2(y, self.enc2(z3))
        return self.head(self.dec1(y, self.enc1(x)))


# -- Swin-UNet -------------------------------------------------------------------------------

class WindowAttention(nn.Module):
    """Multi-head attention inside windows with a learned relative position bias. The bias
    table covers the largest window; smaller (clamped) windows index into it."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self._index_cache: dict[tuple[int, str], torch.Tensor] = {}

    def relative_index(self, ws: int, device: torch.device) -> torch.Tensor:
        key = (ws, str(device))
        if key not in self._index_cache:
            coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws),
                                                indexing="ij")).flatten(1)
            rel = coords[:, :, None] - coords[:, None, :] + (self.window - 1)
            self._index_cache[key] = (rel[0] * (2 * self.window - 1) + rel[1]).to(device)
        return self._index_cache[key]

    def forward(self, windows: torch.Tensor, ws: int, batch: int,
                mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = windows.shape
        qkv = self.qkv(windows).view(bw, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        bias = self.bias_table[self.relative_index(ws, windows.device).view(-1)]
        bias = bias.view(n, n, self.heads).permute(2, 0, 1).unsqueeze(0)     # 1, heads, N, N
        if mask is not None:                                                 # mask: nW, N, N
            bias = (bias + mask.unsqueeze(1)).unsqueeze(0).expand(batch, -1, -1, -1, -1)
            bias = bias.reshape(bw, self.heads, n, n)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(y.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shifted: bool) -> None:
        super().__init__()
        self.window, self.shifted = window, shifted
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)

    @staticmethod
    def region_mask(h: int, w: int, hp: int, wp: int, ws: int, shift: int,
                    device: torch.device) -> torch.Tensor:
        """(nW, N, N) additive mask: a token attends only to tokens of its own region, where
        regions separate wrapped-around rows/columns (shifted windows) and padding."""
        def bands(size: int, padded: int) -> torch.Tensor:
            r = torch.arange(padded)
            return torch.where(r >= size, 2, torch.where(r >= size - shift, 1, 0))
        labels = bands(h, hp)[:, None] * 3 + bands(w, wp)[None, :]
        labels = labels.view(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
        different = labels[:, :, None] != labels[:, None, :]
        mask = torch.zeros(different.shape).masked_fill(different, float("-inf"))
        return mask.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        ws = min(self.window, h, w)
        shift = ws // 2 if self.shifted and min(h, w) > self.window else 0
        y = self.norm1(x)
        if shift:
            y = torch.roll(y, (-shift, -shift), dims=(1, 2))
        pad_h, pad_w = (-h) % ws, (-w) % ws
        y = F.pad(y, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        windows = (y.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
                   .reshape(-1, ws * ws, c))
        mask = (self.region_mask(h, w, hp, wp, ws, shift, x.device)
                if shift or pad_h or pad_w else None)
        y = self.attn(windows, ws, b, mask)
        y = (y.view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
             .reshape(b, hp, wp, c)[:, :h, :w])
        if shift:
            y = torch.roll(y, (shift, shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class SwinStage(nn.Sequential):
    def __init__(self, dim: int, depth: int, window: int) -> None:
        heads = heads_for(dim, 32)    # Swin-T: 32 channels per head
        super().__init__(*(SwinBlock(dim, heads, window, shifted=i % 2 == 1)
                           for i in range(depth)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> channels (4C), LayerNorm, linear to 2C: halves the resolution."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        # channel order (0,0), (1,0), (0,1), (1,1) as in the Swin paper's code
        x = x.view(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5)
        x = x.reshape(b, h // 2, w // 2, 4 * c)
        return self.reduce(self.norm(x))


class PatchExpand(nn.Module):
    """Linear to ``scale``^2 * C_out channels, rearranged into a ``scale`` times larger map."""

    def __init__(self, dim: int, out_dim: int, scale: int) -> None:
        super().__init__()
        self.scale, self.out_dim = scale, out_dim
        self.expand = nn.Linear(dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        s, c = self.scale, self.out_dim
        x = self.expand(x).view(b, h, w, s, s, c).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(b, h * s, w * s, c))


class SwinUNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 48,
                 depth: int = 2, window_size: int = 8) -> None:
        super().__init__()
        c = 2 * width                      # Swin-T's 96 at width 48
        dims = [c, 2 * c, 4 * c, 8 * c]
        self.patch_embed = nn.Conv2d(in_channels, c, 4, stride=4)
        self.embed_norm = nn.LayerNorm(c)
        self.encoder = nn.ModuleList(SwinStage(d, depth, window_size) for d in dims)
        self.merges = nn.ModuleList(PatchMerging(d) for d in dims[:3])
        self.bottleneck_norm = nn.LayerNorm(dims[3])
        self.encoder_channels = dims[3]
        self.expands = nn.ModuleList(PatchExpand(dims[i + 1], dims[i], 2) for i in (2, 1, 0))
        self.skip_proj = nn.ModuleList(nn.Linear(2 * dims[i], dims[i]) for i in (2, 1, 0))
        self.decoder = nn.ModuleList(SwinStage(dims[i], depth, window_size) for i in (2, 1, 0))
        self.decoder_norm = nn.LayerNorm(c)
        self.final_expand = PatchExpand(c, c, 4)
        self.head = nn.Conv2d(c, num_classes, 1, bias=False)
        init_transformer_weights(self)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        y = self.embed_norm(self.patch_embed(x).permute(0, 2, 3, 1))   # B, H/4, W/4, C
        skips = []
        for i, stage in enumerate(self.encoder):
            y = stage(y)
            if i < 3:
                skips.append(y)
                y = self.merges[i](y)
        return self.bottleneck_norm(y), skips

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck stage, (B, 16*width, H/32, W/32)."""
        return self._encode(x)[0].permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, skips = self._encode(x)
        for expand, proj, stage, skip in zip(self.expands, self.skip_proj, self.decoder,
                                             reversed(skips)):
            y = stage(proj(torch.cat([expand(y), skip], -1)))
        y = self.final_expand(self.decoder_norm(y))
        return self.head(y.permute(0, 3, 1, 2))


# -- SegFormer -------------------------------------------------------------------------------

class OverlapPatchEmbed(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientSelfAttention(nn.Module):
    """Self-attention whose keys/values come from a map shrunk by ``reduction`` (MiT)."""

    def __init__(self, dim: int, heads: int, reduction: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.reduction = reduction
        if reduction > 1:
            self.sr = nn.Conv2d(dim, dim, reduction, stride=reduction)
            self.sr_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).view(b, n, self.heads, c // self.heads).transpose(1, 2)
        source = x
        if self.reduction > 1:
            source = self.sr_norm(self.sr(to_map(x, h, w)).flatten(2).transpose(1, 2))
        k, v = self.kv(source).view(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class MixFFN(nn.Module):
    """MLP with a 3x3 depthwise conv between the linears: position information without a
    position embedding."""

    def __init__(self, dim: int, ratio: int = 4) -> None:
        super().__init__()
        hidden = dim * ratio
        self.fc1 = nn.Linear(dim, hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        y = self.dw(to_map(self.fc1(x), h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(y))


class MiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, reduction: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientSelfAttention(dim, heads, reduction)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = MixFFN(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.ffn(self.norm2(x), h, w)


class MiTStage(nn.Module):
    def __init__(self, cin: int, dim: int, heads: int, reduction: int, depth: int,
                 kernel: int, stride: int) -> None:
        super().__init__()
        self.embed = OverlapPatchEmbed(cin, dim, kernel, stride)
        self.blocks = nn.ModuleList(MiTBlock(dim, heads, reduction) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, h, w = self.embed(x)
        for block in self.blocks:
            tokens = block(tokens, h, w)
        return to_map(self.norm(tokens), h, w)


class SegFormer(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 32,
                 depth: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        dims = (width, 2 * width, 5 * width, 8 * width)     # MiT-b0: 32, 64, 160, 256
        heads, reductions = (1, 2, 5, 8), (8, 4, 2, 1)
        strides = ((7, 4), (3, 2), (3, 2), (3, 2))
        cins = (in_channels,) + dims[:3]
        self.stages = nn.ModuleList(MiTStage(cin, d, hd, r, depth, k, s) for cin, d, hd, r, (k, s)
                                    in zip(cins, dims, heads, reductions, strides))
        self.encoder_channels = dims[3]
        embed = 8 * width                                    # 256 for b0
        self.linear = nn.ModuleList(nn.Conv2d(d, embed, 1) for d in dims)
        self.fuse = ConvBNAct(4 * embed, embed, 1)
        self.head = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(embed, num_classes, 1))
        init_transformer_weights(self)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Last MiT stage, (B, 8*width, H/32, W/32)."""
        return self.features(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.features(x)
        size = feats[0].shape[-2:]
        y = torch.cat([upsample_to(proj(f), tuple(size)) for proj, f in zip(self.linear, feats)], 1)
        return upsample_to(self.head(self.fuse(y)), x)


MODELS = [
    ModelSpec("transunet", TransUNet, family="transformer",
              description="TransUNet-style: ResNet-18-D stages to 1/16, ViT (12 layers, "
                          "hidden 8*width) on the stride-16 map, cascaded upsampler with skips",
              citation="Chen, Lu, Yu, Luo, Adeli, Wang, Lu, Yuille, Zhou. TransUNet: "
                       "Transformers Make Strong Encoders for Medical Image Segmentation. "
                       "arXiv:2102.04306, 2021",
              tags=("transformer", "hybrid", "timm", "medical"), input_multiple=16,
              min_size=32, has_encoder=True, defaults={"width": 16, "depth": 12},
              search_space={"width": ("categorical", [8, 16, 32]), "depth": ("int", 4, 12)}),
    ModelSpec("unetr", UNETR, family="transformer",
              description="UNETR-style 2-D: ViT on 16x16 patches (12 layers, hidden "
                          "8*width), layers 3/6/9/12 decoded by a UNet-like decoder",
              citation="Hatamizadeh, Tang, Nath, Yang, Myronenko, Landman, Roth, Xu. UNETR: "
                       "Transformers for 3D Medical Image Segmentation. WACV 2022",
              tags=("transformer", "vit", "medical"), input_multiple=16, min_size=32,
              has_encoder=True, defaults={"width": 16, "depth": 12},
              search_space={"width": ("categorical", [8, 16, 32]),
                            "depth": ("categorical", [4, 8, 12])}),
    ModelSpec("swinunet", SwinUNet, family="transformer",
              description="Swin-UNet: pure Swin Transformer encoder-decoder (patch merging / "
                          "expanding, skip connections), window 8 clamped and padded as needed",
              citation="Cao, Wang, Chen, Jiang, Zhang, Tian, Wang. Swin-Unet: Unet-like Pure "
                       "Transformer for Medical Image Segmentation. ECCV Workshops 2022",
              tags=("transformer", "swin", "medical"), input_multiple=32, min_size=32,
              has_encoder=True, defaults={"width": 48, "window_size": 8},
              search_space={"width": ("categorical", [16, 32, 48]),
                            "window_size": ("categorical", [4, 7, 8])}),
    ModelSpec("segformer", SegFormer, family="transformer",
              description="SegFormer: Mix Transformer encoder (MiT-b0 at width 32: efficient "
                          "attention, Mix-FFN, no position embedding) and all-MLP decoder",
              citation="Xie, Wang, Yu, Anandkumar, Alvarez, Luo. SegFormer: Simple and "
                       "Efficient Design for Semantic Segmentation with Transformers. "
                       "NeurIPS 2021",
              tags=("transformer", "mit"), input_multiple=32, min_size=32, has_encoder=True,
              defaults={"width": 32},
              search_space={"width": ("categorical", [16, 32, 64]),
                            "dropout": ("float", 0.0, 0.3, False)}),
]
