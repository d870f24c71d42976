"""First-party training strategies: ``baseline``, ``aug``, ``geo``, ``stn``, ``ssl`` and the
paper's ``sas`` (= ssl + stn + aug). Any other combination is written with ``+``
(``--strategy ssl+stn``) and composed by the engine from these parts."""

from __future__ import annotations

import inspect
from typing import Any

from jmedbench.hookspecs import hookimpl
from jmedbench.specs import StrategySpec
from jmedbench.strategy import ComposedStrategy, Strategy

from jmedbench_strategies.aug import ColourAugmentation, GeometricAugmentation
from jmedbench_strategies.ssl import ContrastivePretraining
from jmedbench_strategies.stn import SpatialTransformerStrategy

SAS_PARTS = ("ssl", "stn", "aug")


def make_baseline() -> Strategy:
    return Strategy()


def make_aug(aug_strength: float = 1.0, aug_probability: float = 0.8) -> Strategy:
    return ColourAugmentation(aug_strength, aug_probability)


def make_geo(geo_rotate_deg: float = 10.0, geo_scale: float = 0.1,
             geo_flip: bool = True) -> Strategy:
    return GeometricAugmentation(geo_rotate_deg, geo_scale, geo_flip)


def make_stn() -> Strategy:
    return SpatialTransformerStrategy()


def make_ssl(ssl_iterations: int = 100, ssl_batch_size: int = 16, ssl_lr: float = 1e-3,
             ssl_temperature: float = 0.07, ssl_momentum: float = 0.99, ssl_queue: int = 1024,
             ssl_dim: int = 128, ssl_bn_groups: int = 2) -> Strategy:
    return ContrastivePretraining(ssl_iterations, ssl_batch_size, ssl_lr, ssl_temperature,
                                  ssl_momentum, ssl_queue, ssl_dim, ssl_bn_groups)


PART_FACTORIES = {"ssl": make_ssl, "stn": make_stn, "aug": make_aug}


def _own_options(factory, options: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(factory).parameters
    return {k: v for k, v in options.items() if k in params}


def make_sas(**options: Any) -> Strategy:
    """SSL pre-training, then a spatial transformer, then colour augmentation: the same parts,
    in the same order, as ``--strategy ssl+stn+aug``. Each part takes its own options."""
    parts = [PART_FACTORIES[name](**_own_options(PART_FACTORIES[name], options))
             for name in SAS_PARTS]
    return ComposedStrategy(parts, name="sas")


@hookimpl
def jmedbench_strategies():
    return [
        StrategySpec("baseline", make_baseline,
                     "Supervised training only: Adam lr 3e-4, batch 4, Dice + weighted CE",
                     citation="Kingma & Ba, Adam, ICLR 2015", reference=True),
        StrategySpec("aug", make_aug,
                     "Colour-space augmentation: brightness, contrast, gamma, CT window jitter; "
                     "labels untouched (options aug_strength, aug_probability)",
                     citation="Shorten & Khoshgoftaar, A survey on image data augmentation for "
                              "deep learning, J Big Data 6:60, 2019",
                     tags=("augmentation",)),
        StrategySpec("geo", make_geo,
                     "Geometric augmentation: flip, rotation, scaling of image and label "
                     "(nearest neighbour for labels); not part of sas",
                     citation="Ronneberger, Fischer, Brox. U-Net. MICCAI 2015 (elastic and "
                              "affine augmentation)",
                     tags=("augmentation",)),
        StrategySpec("stn", make_stn,
                     "Spatial transformer in front of the segmenter (localisation CNN "
                     "8-16-32-64, FC 256-32-6, identity init); logits warped back to the "
                     "original frame",
                     citation="Jaderberg, Simonyan, Zisserman, Kavukcuoglu. Spatial Transformer "
                              "Networks. NeurIPS 2015",
                     tags=("architecture",)),
        StrategySpec("ssl", make_ssl,
                     "MoCo v2 contrastive pre-training of the encoder (InfoNCE, tau 0.07, "
                     "momentum encoder, queue, MLP head), then supervised training; needs a "
                     "model with an encoder",
                     citation="He et al., Momentum Contrast, CVPR 2020; Chen et al., MoCo v2, "
                              "arXiv:2003.04297",
                     tags=("self-supervised",), needs_encoder=True),
        StrategySpec("sas", make_sas,
                     "The paper's SAS: ssl pre-training + stn + aug", components=SAS_PARTS,
                     ablation=True,
                     citation="He et al., Momentum Contrast, CVPR 2020; Jaderberg et al., "
                              "Spatial Transformer Networks, NeurIPS 2015",
                     tags=("paper",)),
    ]
