"""MONAI's 2-D-capable segmentation networks, as :class:`~jmedbench.specs.ModelSpec` s.

Each model is MONAI's own class built with ``spatial_dims=2``, ``in_channels=1`` and
``out_channels=3`` (random initialisation; FlexibleUNet with ``pretrained=False``, so nothing is
downloaded), in a subclass that adds only ``encode(x)`` (the deepest encoder stage, for the
self-supervised strategies) and a one-line :class:`jmedbench.errors.UserError` for an input size
the network cannot take. The subclasses add no parameter: state dicts have MONAI's keys, so
weights saved from the same MONAI network load with ``--weights`` unchanged.

``width`` (the profiles' base channel count) is the first stage's channel count wherever MONAI
builds the network from one (channel plans double per stage, as the zoo's UNet); SwinUNETR
(``feature_size``, a multiple of 12) and FlexibleUNet (a fixed EfficientNet backbone) take no
``width``, like the zoo's timm UNets, and keep their published size under every profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from jmedbench.errors import UserError
from jmedbench.specs import ModelSpec

MONAI = ("Cardoso et al. MONAI: An open-source framework for deep learning in healthcare. "
         "arXiv:2211.02701, 2022")


def _check_width(name: str, width: Any, multiple: int = 1) -> int:
    if not isinstance(width, int) or isinstance(width, bool) or width < 1 or width % multiple:
        rule = f"a positive multiple of {multiple}" if multiple > 1 else "a positive integer"
        raise UserError(f"[model.{name}] option width: must be {rule}, got {width!r}")
    return width


def _check_size(name: str, x: Any, multiple: int, min_size: int) -> None:
    h, w = x.shape[-2:]
    if h % multiple or w % multiple or h < min_size or w < min_size:
        raise UserError(f"model '{name}': input {h}x{w}: height and width must be multiples of "
                        f"{multiple} and at least {min_size}")


# -- encode() for each network layout -----------------------------------------------------------
# MONAI builds its UNets recursively (each level holds the next one inside it), so the deepest
# encoder stage is reached by walking down that nesting, running only the down-sampling path.
def _unet_encode(net: Any, x: Any) -> Any:
    from monai.networks.layers.simplelayers import SkipConnection

    level = net.model  # Sequential(down, SkipConnection(next level or the bottom), up)
    while True:
        x = level[0](x)
        inner = level[1].submodule
        if (isinstance(inner, type(level)) and len(inner) == 3
                and isinstance(inner[1], SkipConnection)):
            level = inner
            continue
        return inner(x)  # the bottom layer


def _attention_unet_encode(net: Any, x: Any) -> Any:
    head, layer = net.model[0], net.model[1]
    x = head(x)
    while True:
        sub = layer.submodule  # Sequential(ConvBlock, next AttentionLayer) or the bottom ConvBlock
        if hasattr(sub, "__getitem__") and len(sub) == 2:
            x = sub[0](x)
            layer = sub[1]
        else:
            return sub(x)


def _basic_unet_encode(net: Any, x: Any) -> Any:
    x = net.conv_0(x)
    for down in (net.down_1, net.down_2, net.down_3, net.down_4):
        x = down(x)
    return x


def _basic_unet_pp_encode(net: Any, x: Any) -> Any:
    for stage in (net.conv_0_0, net.conv_1_0, net.conv_2_0, net.conv_3_0, net.conv_4_0):
        x = stage(x)
    return x


def _segresnet_encode(net: Any, x: Any) -> Any:
    # SegResNet has its own encode(x) -> (deepest map, skips); ours overrides it, so call it past
    # ContractMixin in the method resolution order
    return super(ContractMixin, net).encode(x)[0]


def _segresnet_forward(net: Any, x: Any) -> Any:
    # MONAI's SegResNet.forward, calling MONAI's encode (ours returns the deepest map only)
    x, skips = super(ContractMixin, net).encode(x)
    skips.reverse()
    return net.decode(x, skips)


def _segresnet_ds_encode(net: Any, x: Any) -> Any:
    return net.encoder(x)[-1]


def _flexible_unet_encode(net: Any, x: Any) -> Any:
    return net.encoder(x)[-1]


def _swin_unetr_encode(net: Any, x: Any) -> Any:
    hidden = net.swinViT(x, net.normalize)
    return net.encoder10(hidden[4])


def _dynunet_encode(net: Any, x: Any) -> Any:
    x = net.input_block(x)
    for down in net.downsamples:
        x = down(x)
    return net.bottleneck(x)


@dataclass(frozen=True)
class Network:
    """One registered MONAI network: how it is built in 2-D and what the spec says about it."""

    name: str
    monai_class: str
    family: str
    description: str
    citation: str
    build: Callable[..., dict]  # (name, width) -> MONAI keyword arguments
    encode: Callable[[Any, Any], Any]
    input_multiple: int
    min_size: int
    width: int | None = None  # the default width; None: the network takes no width
    tags: tuple[str, ...] = ()
    after_build: Callable[[Any], None] | None = None  # fixes applied to each built model
    forward: Callable[[Any, Any], Any] | None = None  # replaces the library's forward


def _channels(width: int, stages: int = 5) -> tuple[int, ...]:
    return tuple(width * 2 ** k for k in range(stages))


def _unet(name: str, width: int) -> dict:
    # MONAI's tutorials' 2-D UNet: 4 strided down-samplings, 2 residual units per level
    return dict(channels=_channels(_check_width(name, width)), strides=(2, 2, 2, 2),
                num_res_units=2)


def _attention_unet(name: str, width: int) -> dict:
    return dict(channels=_channels(_check_width(name, width)), strides=(2, 2, 2, 2))


def _basic_unet(name: str, width: int) -> dict:
    # MONAI's default features (32, 32, 64, 128, 256, 32) are width 32
    w = _check_width(name, width)
    return dict(features=(w, w, 2 * w, 4 * w, 8 * w, w))


def _segresnet(name: str, width: int) -> dict:
    # GroupNorm with 8 groups: the first stage needs a multiple of 8 channels
    return dict(init_filters=_check_width(name, width, 8))


def _segresnet_ds(name: str, width: int) -> dict:
    return dict(init_filters=_check_width(name, width))


def _flexible_unet(name: str, width: None = None) -> dict:
    # pretrained=False: MONAI would otherwise download ImageNet weights for the backbone
    return dict(backbone="efficientnet-b0", pretrained=False)


def _fix_efficientnet_encoder(model: Any) -> None:
    """Two fixes to MONAI's EfficientNet feature encoder, neither changing the function:

    - it keeps the classifier's head (1x1 convolution, its norm and the linear layer) that its
      forward never reaches: parameters that would be saved, counted and never trained; they
      become parameter-free identities;
    - its BatchNorms keep TensorFlow's momentum 0.01 (the decoder's have PyTorch's 0.1): after
      the kit's 80 learning steps the running statistics were so far behind that the eval-mode
      model predicted only background although the training loss fell 1.60 -> 0.15 (measured).
      They get 0.1, as timm's EfficientNet (the zoo's and smp-unet-efficientnet_b0's) has.
    """
    import torch.nn as nn

    for attr in ("_conv_head", "_bn1", "_fc"):
        setattr(model.encoder, attr, nn.Identity())
    for module in model.encoder.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.1


def _drop_deep_supervision_heads(model: Any) -> None:
    """BasicUNet++ builds the heads of its shallower nested outputs even without deep
    supervision, where its forward uses only the last one: untrained parameters, removed."""
    import torch.nn as nn

    for attr in ("final_conv_0_1", "final_conv_0_2", "final_conv_0_3"):
        setattr(model, attr, nn.Identity())


def _swin_unetr(name: str, width: None = None) -> dict:
    # MONAI's default Swin-T-like plan (feature_size 24, depths 2-2-2-2), window 7
    return dict(feature_size=24)


def _dynunet(name: str, width: int) -> dict:
    # the nnU-Net 2-D plan at this depth: 3x3 kernels, 4 down-samplings, filters doubling and
    # capped at 15x the first (nnU-Net's 32 .. 480)
    w = _check_width(name, width)
    filters = [min(w * 2 ** k, 15 * w) for k in range(5)]
    return dict(kernel_size=[3] * 5, strides=[1, 2, 2, 2, 2], upsample_kernel_size=[2] * 4,
                filters=filters, res_block=True)


NETWORKS = [
    Network("monai-unet", "UNet", "unet",
            "MONAI UNet: residual units (2 per level), strided-conv down-sampling, "
            "4 levels, instance norm",
            "Kerfoot, Clough, Oksuz, Lee, King, Schnabel. Left-Ventricle Quantification Using "
            "Residual U-Net. STACOM 2018; Ronneberger et al. U-Net, MICCAI 2015",
            _unet, _unet_encode, 16, 32, width=16, tags=("unet",)),
    Network("monai-attentionunet", "AttentionUnet", "unet",
            "MONAI Attention U-Net: additive attention gates on the skips, 4 levels",
            "Oktay et al. Attention U-Net: Learning Where to Look for the Pancreas. MIDL 2018",
            _attention_unet, _attention_unet_encode, 16, 32, width=16, tags=("unet", "attention")),
    Network("monai-basicunet", "BasicUNet", "unet",
            "MONAI BasicUNet: the plain U-Net (two conv-norm-act per level), 4 levels",
            "Falk et al. U-Net: deep learning for cell counting, detection, and morphometry. "
            "Nature Methods 16, 2019",
            _basic_unet, _basic_unet_encode, 16, 32, width=32, tags=("unet",)),
    Network("monai-basicunetplusplus", "BasicUNetPlusPlus", "unet",
            "MONAI BasicUNet++: nested dense skip pathways on the BasicUNet encoder",
            "Zhou, Siddiquee, Tajbakhsh, Liang. UNet++: A Nested U-Net Architecture for Medical "
            "Image Segmentation. DLMIA 2018",
            _basic_unet, _basic_unet_pp_encode, 16, 32, width=32, tags=("unet", "nested"),
            after_build=_drop_deep_supervision_heads),
    Network("monai-segresnet", "SegResNet", "encoder-decoder",
            "MONAI SegResNet: residual encoder (1-2-2-4 blocks), light decoder, group norm",
            "Myronenko. 3D MRI brain tumor segmentation using autoencoder regularization. "
            "BrainLes (MICCAI) 2018",
            _segresnet, _segresnet_encode, 8, 32, width=8, tags=("resnet",),
            forward=_segresnet_forward),
    Network("monai-segresnetds", "SegResNetDS", "encoder-decoder",
            "MONAI SegResNetDS: SegResNet with batch norm and a deconvolution decoder "
            "(Auto3DSeg's network)",
            "Myronenko. 3D MRI brain tumor segmentation using autoencoder regularization. "
            "BrainLes (MICCAI) 2018; the SegResNetDS variant of MONAI Auto3DSeg",
            _segresnet_ds, _segresnet_ds_encode, 16, 32, width=32, tags=("resnet",)),
    Network("monai-flexibleunet-efficientnet-b0", "FlexibleUNet", "unet",
            "MONAI FlexibleUNet: U-Net decoder on an EfficientNet-B0 backbone (random init, "
            "1-channel stem)",
            "Tan, Le. EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks. "
            "ICML 2019; Ronneberger et al. U-Net, MICCAI 2015",
            _flexible_unet, _flexible_unet_encode, 32, 32, tags=("unet", "efficientnet"),
            after_build=_fix_efficientnet_encoder),
    Network("monai-swinunetr", "SwinUNETR", "transformer",
            "MONAI SwinUNETR in 2-D: Swin transformer encoder (window 7, feature size 24), "
            "CNN decoder",
            "Hatamizadeh et al. Swin UNETR: Swin Transformers for Semantic Segmentation of Brain "
            "Tumors in MRI Images. BrainLes (MICCAI) 2021",
            # at 32 px the deepest stage is 1x1, where instance norm has nothing to normalise
            _swin_unetr, _swin_unetr_encode, 32, 64, tags=("transformer", "swin")),
    Network("monai-dynunet", "DynUNet", "unet",
            "MONAI DynUNet: the nnU-Net 2-D network (residual blocks, instance norm, "
            "leaky ReLU), 4 down-samplings",
            "Isensee, Jaeger, Kohl, Petersen, Maier-Hein. nnU-Net: a self-configuring method "
            "for deep learning-based biomedical image segmentation. Nature Methods 18, 2021",
            _dynunet, _dynunet_encode, 16, 32, width=32, tags=("unet", "nnunet")),
]


class ContractMixin:
    """``encode`` and a one-line size error in front of a MONAI network (no parameters)."""

    jmedbench_network: Network

    def check_input_size(self, x: Any) -> None:
        net = self.jmedbench_network
        _check_size(net.name, x, net.input_multiple, net.min_size)

    def encode(self, x: Any) -> Any:
        """The deepest encoder stage, (B, C, h, w)."""
        self.check_input_size(x)
        return self.jmedbench_network.encode(self, x)

    def forward(self, x: Any) -> Any:
        self.check_input_size(x)
        net = self.jmedbench_network
        out = net.forward(self, x) if net.forward is not None else super().forward(x)
        if isinstance(out, (list, tuple)):  # BasicUNet++: a list of heads, one without deep
            out = out[0]                    # supervision
        return out


_CLASSES: dict[str, type] = {}


def model_class(monai_class: str) -> type:
    """MONAI's class with :class:`ContractMixin` in front, made when first built (MONAI is
    imported only then)."""
    if monai_class not in _CLASSES:
        import monai.networks.nets as nets

        base = getattr(nets, monai_class)
        _CLASSES[monai_class] = type(f"Benchmarked{monai_class}", (ContractMixin, base),
                                     {"__module__": __name__,
                                      "__doc__": f"monai.networks.nets.{monai_class} with "
                                                 f"encode() and a one-line size error."})
    return _CLASSES[monai_class]


def make_factory(net: Network) -> Callable[..., Any]:
    def build(in_channels: int, num_classes: int, **kwargs: Any) -> Any:
        import torch

        cls = model_class(net.monai_class)
        if net.monai_class == "SwinUNETR" and torch.get_default_device().type == "meta":
            # `jmedbench list` counts parameters on the meta device; SwinUNETR reads its
            # drop-path rates with .item(), which a meta tensor cannot give: build on the CPU
            # there, leaving the caller's random state as it was.
            with torch.device("cpu"), torch.random.fork_rng(devices=[]):
                return build(in_channels, num_classes, **kwargs)
        model = cls(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, **kwargs)
        model.jmedbench_network = net
        if net.after_build is not None:
            net.after_build(model)
        return model

    if net.width is not None:
        def factory(in_channels: int = 1, num_classes: int = 3, width: int = net.width) -> Any:
            return build(in_channels, num_classes, **net.build(net.name, width))
    else:
        def factory(in_channels: int = 1, num_classes: int = 3) -> Any:
            return build(in_channels, num_classes, **net.build(net.name))

    factory.__name__ = net.name.replace("-", "_")
    factory.__doc__ = f"monai.networks.nets.{net.monai_class} in 2-D, random init."
    return factory


def make_spec(net: Network) -> ModelSpec:
    return ModelSpec(
        net.name, make_factory(net), family=net.family, description=net.description,
        citation=f"{net.citation}; implementation: {MONAI}", tags=("monai",) + net.tags,
        input_multiple=net.input_multiple, min_size=net.min_size, has_encoder=True,
        defaults={"width": net.width} if net.width is not None else {},
        search_space={"width": ("categorical", [8, 16, 32])} if net.width is not None else {},
        libraries=("monai",))


MODELS = [make_spec(net) for net in NETWORKS]
