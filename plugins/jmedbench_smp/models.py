"""The smp decoders on their curated encoders, as :class:`~jmedbench.specs.ModelSpec` s.

Each model is smp's own class (``smp.Unet``, ``smp.FPN``, ...) built with
``encoder_weights=None`` (random initialisation: nothing is downloaded), ``in_channels=1`` and
``classes=3``, in a subclass that adds only what the benchmark contract asks for:

- ``encode(x)``: the encoder's deepest feature map, for the self-supervised strategies;
- an input-size check that raises :class:`jmedbench.errors.UserError` (one line naming the size
  and the rule) instead of smp's RuntimeError.

The subclass adds no parameter, so its state dict has exactly smp's keys: weights saved from
an ``smp.Unet("resnet34", in_channels=1, classes=3)`` load with ``--weights`` unchanged (see
docs/model-libraries.md).

``width`` (the profiles' base channel count) is not accepted: the encoder is a fixed published
design, as for the zoo's timm UNets, so a ``quick`` run trains the real network. Another
encoder is chosen by the ``encoder_name`` model option (any name of
``smp.encoders.get_encoder_names()`` or ``tu-<timm model>``), checked before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from jmedbench.errors import UserError
from jmedbench.registry import suggest
from jmedbench.specs import ModelSpec

SMP = ("Iakubovskii. Segmentation Models Pytorch, 2019 "
       "(https://github.com/qubvel-org/segmentation_models.pytorch)")

# The papers of the encoders in the curated set, appended to each decoder's citation.
ENCODER_CITATIONS = {
    "resnet": "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016",
    "efficientnet": "Tan, Le. EfficientNet: Rethinking Model Scaling for Convolutional Neural "
                    "Networks. ICML 2019",
    "mobilenet": "Sandler, Howard, Zhu, Zhmoginov, Chen. MobileNetV2: Inverted Residuals and "
                 "Linear Bottlenecks. CVPR 2018",
    "mit": "Xie et al. SegFormer: Simple and Efficient Design for Semantic Segmentation with "
           "Transformers. NeurIPS 2021",
}


@dataclass(frozen=True)
class Decoder:
    """One smp architecture: its class name in smp, the slug in our model names, its paper."""

    smp_class: str
    slug: str
    family: str
    title: str
    citation: str


# Every smp decoder but DPT: DPT needs a ViT encoder, and randomly initialised on the 4x4 tokens
# of a 64 px slice (ViT-Tiny/16) it still predicted only background after the kit's 80 learning
# steps (loss 2.44 -> 1.34, measured), so it cannot pass the conformance kit.
DECODERS = {d.slug: d for d in [
    Decoder("Unet", "unet", "unet", "U-Net decoder",
            "Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image "
            "Segmentation. MICCAI 2015"),
    Decoder("UnetPlusPlus", "unetplusplus", "unet", "U-Net++ (nested dense skips) decoder",
            "Zhou, Siddiquee, Tajbakhsh, Liang. UNet++: A Nested U-Net Architecture for "
            "Medical Image Segmentation. DLMIA 2018"),
    Decoder("FPN", "fpn", "encoder-decoder", "Feature Pyramid Network decoder",
            "Kirillov, Girshick, He, Dollar. Panoptic Feature Pyramid Networks. CVPR 2019"),
    Decoder("PSPNet", "pspnet", "context", "Pyramid Scene Parsing (pyramid pooling) decoder",
            "Zhao, Shi, Qi, Wang, Jia. Pyramid Scene Parsing Network. CVPR 2017"),
    Decoder("DeepLabV3", "deeplabv3", "context", "DeepLab v3 (ASPP on a dilated encoder)",
            "Chen, Papandreou, Schroff, Adam. Rethinking Atrous Convolution for Semantic Image "
            "Segmentation. arXiv:1706.05587, 2017"),
    Decoder("DeepLabV3Plus", "deeplabv3plus", "context",
            "DeepLab v3+ (ASPP and a low-level skip)",
            "Chen, Zhu, Papandreou, Schroff, Adam. Encoder-Decoder with Atrous Separable "
            "Convolution for Semantic Image Segmentation. ECCV 2018"),
    Decoder("Linknet", "linknet", "encoder-decoder", "LinkNet decoder (additive skips)",
            "Chaurasia, Culurciello. LinkNet: Exploiting Encoder Representations for Efficient "
            "Semantic Segmentation. VCIP 2017"),
    Decoder("MAnet", "manet", "unet", "MA-Net (position and multi-scale attention) decoder",
            "Fan, Zhang, Wang, Li. MA-Net: A Multi-Scale Attention Network for Liver and Tumor "
            "Segmentation. IEEE Access 8, 2020"),
    Decoder("PAN", "pan", "context", "Pyramid Attention Network decoder",
            "Li, Xiong, An, Wang. Pyramid Attention Network for Semantic Segmentation. BMVC "
            "2018"),
    Decoder("UPerNet", "upernet", "context", "UPerNet (pyramid pooling + FPN) decoder",
            "Xiao, Liu, Zhou, Jiang, Sun. Unified Perceptual Parsing for Scene Understanding. "
            "ECCV 2018"),
    Decoder("Segformer", "segformer", "transformer", "SegFormer all-MLP decoder",
            "Xie, Wang, Yu, Anandkumar, Alvarez, Luo. SegFormer: Simple and Efficient Design "
            "for Semantic Segmentation with Transformers. NeurIPS 2021"),
]}


@dataclass(frozen=True)
class Curated:
    """One registered model: a decoder on an encoder, with the input sizes it takes."""

    decoder: str
    encoder: str
    encoder_family: str  # key of ENCODER_CITATIONS
    encoder_title: str
    input_multiple: int
    min_size: int
    # encoder modules smp builds and this decoder never calls (found by
    # find_unused_encoder_modules with smp 0.6; tests/test_smp.py checks the list)
    unused: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        # timm encoders ("tu-vit_tiny_patch16_224") are named without the "tu-" prefix
        return f"smp-{self.decoder}-{self.encoder.removeprefix('tu-')}"


# The curated set: every decoder on ResNet-34 (smp's default encoder, so results compare with
# the literature that uses smp's defaults; PAN excepted, see below), the U-Net also on two light
# encoders, and SegFormer on the encoder it was designed for (the smallest MiT).
# Sizes as measured with smp 0.6 (tests/test_smp.py checks the smallest and the next ones):
# smp's U-Net interpolates to each skip and takes any size; the others need multiples of the
# encoder's output stride (32, or 8/16 for the dilated DeepLab and PSPNet encoders); PAN's feature pyramid attention pools the stride-16 map
# three more times, so it needs at least 128.
CURATED = [
    Curated("unet", "resnet34", "resnet", "ResNet-34", 1, 32),
    # EfficientNet-B0 from timm ("tu-"), not smp's own port: that port keeps TensorFlow's
    # BatchNorm momentum 0.01, whose running statistics after the kit's 80 learning steps made
    # the eval-mode model predict only background although the training loss fell 1.83 -> 0.17
    # (measured); timm's has PyTorch's 0.1 and is the zoo's unet-efficientnet_b0 encoder.
    Curated("unet", "tu-efficientnet_b0", "efficientnet", "EfficientNet-B0 (timm)", 1, 32),
    Curated("unet", "mobilenet_v2", "mobilenet", "MobileNetV2", 1, 32),
    Curated("unetplusplus", "resnet34", "resnet", "ResNet-34", 32, 32),
    Curated("fpn", "resnet34", "resnet", "ResNet-34", 32, 32),
    Curated("pspnet", "resnet34", "resnet", "ResNet-34", 8, 32, unused=("layer3", "layer4")),
    Curated("deeplabv3", "resnet34", "resnet", "ResNet-34", 8, 32),
    Curated("deeplabv3plus", "resnet34", "resnet", "ResNet-34", 16, 32),
    Curated("linknet", "resnet34", "resnet", "ResNet-34", 32, 32),
    Curated("manet", "resnet34", "resnet", "ResNet-34", 32, 32),
    # PAN on MobileNetV2, not ResNet-34: randomly initialised, PAN-ResNet-34's eval logits
    # reach about 1.8e4, where float reordering between batch sizes (0.14) exceeds the kit's
    # batch-independence tolerance; on MobileNetV2 they stay below 0.1 (measured).
    Curated("pan", "mobilenet_v2", "mobilenet", "MobileNetV2", 32, 128),
    Curated("upernet", "resnet34", "resnet", "ResNet-34", 32, 32),
    Curated("segformer", "mit_b0", "mit", "Mix Transformer MiT-B0", 32, 32),
]


# -- the model class --------------------------------------------------------------------------
class ContractMixin:
    """What jmedbench adds to an smp model: ``encode`` and a one-line error for a bad size.
    No parameters, no buffers: the state dict stays smp's."""

    jmedbench_name: str = "smp model"

    @property
    def encoder_channels(self) -> int:
        """Channels of :meth:`encode`'s output."""
        return int(self.encoder.out_channels[-1])

    def check_input_shape(self, x) -> None:
        if not getattr(self, "requires_divisible_input_shape", True):
            return
        h, w = x.shape[-2:]
        stride = self.encoder.output_stride
        if h % stride or w % stride:
            fit_h, fit_w = (-(-side // stride) * stride for side in (h, w))
            raise UserError(f"model '{self.jmedbench_name}': input {h}x{w}: height and width "
                            f"must be multiples of {stride} (its encoder's output stride); "
                            f"the nearest size that fits is {fit_h}x{fit_w}")

    def encode(self, x):
        """The encoder's deepest feature map, (B, C, H/s, W/s) with s its output stride."""
        self.check_input_shape(x)
        features = self.encoder(x)
        if isinstance(features, tuple):  # smp's ViT encoders also return their prefix tokens
            features = features[0]
        return features[-1]


_CLASSES: dict[str, type] = {}


def model_class(smp_class: str) -> type:
    """smp's class with :class:`ContractMixin` in front (made once, when first built, so that
    smp is imported only then)."""
    if smp_class not in _CLASSES:
        import segmentation_models_pytorch as smp

        base = getattr(smp, smp_class)
        _CLASSES[smp_class] = type(f"Benchmarked{smp_class}", (ContractMixin, base),
                                   {"__module__": __name__,
                                    "__doc__": f"smp.{smp_class} with encode() and a "
                                               f"one-line size error."})
    return _CLASSES[smp_class]


def find_unused_encoder_modules(model: Any, in_channels: int, size: int) -> list[str]:
    """The outermost encoder modules with parameters that a forward pass never calls.

    smp builds whole backbones and uses only some of them: the classification-head convolution
    of its EfficientNet encoders, the ResNet stages beyond PSPNet's depth 3. Those parameters
    would be saved, counted and never trained (the conformance kit refuses them). Which ones
    are unused depends on the encoder and decoder, so they are found by one eval-mode forward of
    a zero image with hooks (no state changes, no random numbers drawn).
    """
    import torch

    called: set[int] = set()
    hooks = [m.register_forward_hook(lambda mod, args, out: called.add(id(mod)))
             for m in model.encoder.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, size, size))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    # A module is unused when neither it nor any module inside it ran: containers that are
    # iterated rather than called (EfficientNet's blocks) and models used through another method
    # (timm's forward_intermediates) have called children and stay.
    ran_inside = {name for name, m in model.encoder.named_modules()
                  if any(id(sub) in called for sub in m.modules())}
    unused = [name for name, m in model.encoder.named_modules()
              if name and name not in ran_inside and any(True for _ in m.parameters())]
    return [n for n in unused if not any(n.startswith(o + ".") for o in unused)]


def drop_unused_encoder_modules(model: Any, entry: Curated, encoder_name: str,
                                in_channels: int) -> list[str]:
    """Replace the unused encoder modules (see :func:`find_unused_encoder_modules`) by
    ``nn.Identity`` and return their names.

    ``jmedbench list`` builds models on the meta device (no memory, no computation) to count
    parameters, where no forward can run: there the curated model's measured list is used, so
    that the listed count is that of the trained model (another encoder_name is listed with its
    unused modules counted; building it anywhere else finds and removes them).
    """
    import torch

    listing = "meta" in (next(model.parameters()).device.type, torch.get_default_device().type)
    if not listing:
        # probed at 64 px, or the curated model's smallest size if larger (a multiple of 32,
        # which every encoder takes)
        names = find_unused_encoder_modules(model, in_channels,
                                            -(-max(64, entry.min_size) // 32) * 32)
    elif encoder_name == entry.encoder and in_channels == 1:
        names = list(entry.unused)
    else:
        names = []
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.encoder.get_submodule(parent_name) if parent_name else model.encoder
        setattr(parent, child, torch.nn.Identity())
    return names


# -- encoder names ----------------------------------------------------------------------------
def check_encoder_name(model: str, encoder_name: Any) -> None:
    """A UserError line when ``encoder_name`` is neither an smp encoder nor ``tu-<timm model>``."""
    where = f"[model.{model}] option encoder_name"
    if not isinstance(encoder_name, str) or not encoder_name:
        raise UserError(f"{where}: expected an encoder name (a string), got {encoder_name!r}")
    if encoder_name.startswith("tu-"):
        import timm

        timm_name = encoder_name[3:]
        if not timm.is_model(timm_name):
            hints = suggest(timm_name, timm.list_models())
            hint = (" (did you mean " + " or ".join(f"'tu-{h}'" for h in hints) + "?)"
                    if hints else "")
            raise UserError(f"{where} '{encoder_name}': timm has no model '{timm_name}'{hint}")
        return
    from segmentation_models_pytorch.encoders import get_encoder_names

    names = get_encoder_names()
    if encoder_name not in names:
        hints = suggest(encoder_name, names)
        hint = ("did you mean " + " or ".join(f"'{h}'" for h in hints) + "? ") if hints else ""
        raise UserError(f"{where} '{encoder_name}' is not an smp encoder ({hint}smp has "
                        f"{len(names)}, e.g. {', '.join(names[:4])}; timm encoders are named "
                        f"'tu-<timm model>')")


# -- factories and specs ----------------------------------------------------------------------
def make_factory(entry: Curated) -> Callable[..., Any]:
    decoder = DECODERS[entry.decoder]
    name = entry.name

    def factory(in_channels: int = 1, num_classes: int = 3,
                encoder_name: str = entry.encoder) -> Any:
        check_encoder_name(name, encoder_name)
        cls = model_class(decoder.smp_class)

        def build() -> Any:
            # encoder_weights=None: random initialisation; smp would otherwise download
            # ImageNet weights, and nothing may reach the network at run time.
            return cls(encoder_name=encoder_name, encoder_weights=None,
                       in_channels=in_channels, classes=num_classes)

        def build_here() -> Any:
            import torch

            try:
                return build()
            except RuntimeError:
                if torch.get_default_device().type != "meta":
                    raise
                # `jmedbench list` counts parameters on the meta device; some encoders (timm
                # ViTs, MiT) compute with tensors while being built, which meta tensors cannot:
                # build those on the CPU, leaving the caller's random state as it was.
                with torch.device("cpu"), torch.random.fork_rng(devices=[]):
                    return build()

        try:
            model = build_here()
        except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
            # smp refuses some decoder/encoder pairs (e.g. U-Net++ on a transformer encoder)
            raise UserError(f"[model.{name}] option encoder_name '{encoder_name}': smp cannot "
                            f"build {decoder.smp_class} on it ({_first_line(exc)})") from None
        model.jmedbench_name = name
        model.jmedbench_dropped = drop_unused_encoder_modules(model, entry, encoder_name,
                                                              in_channels)
        return model

    factory.__name__ = name.replace("-", "_")
    factory.__doc__ = (f"smp.{decoder.smp_class} on a randomly initialised '{entry.encoder}' "
                       f"encoder (any other through encoder_name).")
    return factory


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def make_spec(entry: Curated) -> ModelSpec:
    decoder = DECODERS[entry.decoder]
    return ModelSpec(
        entry.name, make_factory(entry), family=decoder.family,
        description=f"smp {decoder.smp_class}: {decoder.title} on a {entry.encoder_title} "
                    f"encoder (random init, 1-channel stem; other encoders by encoder_name)",
        citation=f"{decoder.citation}; {ENCODER_CITATIONS[entry.encoder_family]}; "
                 f"implementation: {SMP}",
        tags=("smp", decoder.slug, entry.encoder_family),
        input_multiple=entry.input_multiple, min_size=entry.min_size, has_encoder=True,
        libraries=("segmentation-models-pytorch", "timm"))


MODELS = [make_spec(entry) for entry in CURATED]
