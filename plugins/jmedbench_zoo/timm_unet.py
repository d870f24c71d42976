"""UNet decoders on timm encoders (the "Unet" of segmentation_models_pytorch): the encoder is
``timm.create_model(name, features_only=True, pretrained=False, in_chans=1)``, randomly
initialised (nothing is downloaded), and the decoder up-samples from the deepest feature map,
concatenating each shallower one, with two 3x3 conv-BN-ReLU per stage.

The encoder is the backbone's own fixed design, so these models take no ``width``; the
decoder's channels are ``decoder_width * (16, 8, 4, 2, 1)`` (16 gives smp's 256 .. 16).
timm is imported when a model is built, so listing models stays fast.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from jmedbench.specs import ModelSpec


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(cin + cskip, cout), conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.body(x)


class TimmUNet(nn.Module):
    def __init__(self, encoder_name: str, in_channels: int = 1, num_classes: int = 3,
                 decoder_width: int = 16) -> None:
        super().__init__()
        import timm  # lazily: importing timm costs about a second

        if decoder_width < 1:
            raise ValueError(f"decoder_width must be positive, got {decoder_width}")
        self.encoder = timm.create_model(encoder_name, features_only=True, pretrained=False,
                                         in_chans=in_channels)
        channels = self.encoder.feature_info.channels()
        self.reductions = self.encoder.feature_info.reduction()
        # one decoder block per shallower feature map, plus one to full resolution when the
        # shallowest map is smaller than the input
        skips = list(reversed(channels[:-1]))
        if self.reductions[0] > 1:
            skips.append(0)
        dec = [decoder_width * 2 ** k for k in reversed(range(len(skips)))]
        self.blocks = nn.ModuleList()
        prev = channels[-1]
        for cskip, cout in zip(skips, dec):
            self.blocks.append(DecoderBlock(prev, cskip, cout))
            prev = cout
        self.head = nn.Conv2d(prev, num_classes, 3, padding=1)
        self.encoder_channels = channels[-1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's deepest feature map, (B, C, H/32, W/32)."""
        return self.encoder(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        shallower = list(reversed(feats[:-1]))
        for k, block in enumerate(self.blocks):
            skip = shallower[k] if k < len(shallower) else None
            y = block(y, skip, skip.shape[-2:] if skip is not None else x.shape[-2:])
        return self.head(y)


def unet_on(encoder_name: str):
    def factory(in_channels: int = 1, num_classes: int = 3, decoder_width: int = 16):
        return TimmUNet(encoder_name, in_channels, num_classes, decoder_width)
    factory.__name__ = f"unet_{encoder_name}"
    factory.__doc__ = f"UNet decoder on a randomly initialised timm '{encoder_name}'."
    return factory


DECODER_SPACE = {"decoder_width": ("categorical", [8, 16, 32])}
SMP = ("Iakubovskii. Segmentation Models Pytorch, 2019 "
       "(https://github.com/qubvel-org/segmentation_models.pytorch)")

MODELS = [
    ModelSpec(
        "unet-resnet34", unet_on("resnet34"), family="unet",
        description="UNet decoder on a timm ResNet-34 encoder (random init, 1-channel stem); "
                    "the same network as smp-unet-resnet34, the name the leaderboard scores",
        citation="Ronneberger et al. U-Net, MICCAI 2015; He, Zhang, Ren, Sun. Deep Residual "
                 "Learning for Image Recognition. CVPR 2016; decoder as in " + SMP,
        tags=("unet", "timm", "resnet"), input_multiple=32, min_size=32, has_encoder=True,
        defaults={"decoder_width": 16}, search_space=DECODER_SPACE),
    ModelSpec(
        "unet-efficientnet_b0", unet_on("efficientnet_b0"), family="unet",
        description="UNet decoder on a timm EfficientNet-B0 encoder (random init, 1-channel "
                    "stem); the same network as smp-unet-efficientnet_b0, the name the "
                    "leaderboard scores",
        citation="Ronneberger et al. U-Net, MICCAI 2015; Tan, Le. EfficientNet: Rethinking "
                 "Model Scaling for Convolutional Neural Networks. ICML 2019; decoder as in "
                 + SMP,
        tags=("unet", "timm", "efficientnet"), input_multiple=32, min_size=32,
        has_encoder=True, defaults={"decoder_width": 16}, search_space=DECODER_SPACE),
]
