"""The small dataclasses a plugin returns from its hooks: one per model, dataset, strategy,
metric and corruption. The registry reads nothing else from a plugin.

Everything that crosses a spec boundary is numpy (images float32 in HU, label maps uint8 with
0 background, 1 cortical, 2 cancellous) except models and strategies, which own a framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

# A search space entry, as Optuna understands it: ("float", low, high, log) / ("int", low, high)
# / ("categorical", [choices]).
SearchSpace = dict[str, tuple]


@dataclass(frozen=True)
class Column:
    """A number of a run (a key of its metrics) that tables show.

    ``shown`` maps a table to this column's position in it (smaller first): ``leaderboard``
    (the published table, CSV and page), ``run`` (the table ``jmedbench run`` prints before the
    other metrics), ``summary`` (``bench`` and ``ablation``), ``compare`` (the leaderboard
    README's strategy-against-reference rows, titled with ``description``) and ``plot`` (a
    panel of the leaderboard figure, against the headline metric).
    """

    key: str
    title: str
    digits: int = 4
    higher_is_better: bool = True
    description: str = ""
    shown: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """A segmentation architecture.

    ``factory(in_channels=1, num_classes=3, **kwargs)`` returns a module that maps
    (B, in_channels, H, W) float32 to logits (B, num_classes, H, W) at the input size, for any H
    and W that are multiples of ``input_multiple`` and at least ``min_size``. A model that also
    has ``encode(x) -> Tensor (B, C, h, w)`` (its deepest encoder stage) sets ``has_encoder``,
    which the self-supervised strategies need.
    """

    name: str
    factory: Callable[..., Any]
    family: str
    description: str
    citation: str
    tags: tuple[str, ...] = ()
    backend: str = "torch"
    input_multiple: int = 32
    min_size: int = 32
    has_encoder: bool = False
    reference: bool = False  # the model relative scores (mCE) are taken against
    defaults: dict[str, Any] = field(default_factory=dict)
    search_space: SearchSpace = field(default_factory=dict)
    # distributions whose code builds the network (e.g. "segmentation-models-pytorch"): every
    # run of the model records their installed versions (provenance["model"])
    libraries: tuple[str, ...] = ()

    def side_problem(self, side: int) -> str | None:
        """Why a slice side of ``side`` pixels is not one the model takes, or None."""
        if side < self.min_size:
            return f"is below its minimum {self.min_size}"
        if side % max(1, self.input_multiple):
            return f"is not a multiple of {self.input_multiple}"
        return None

    def fitting_side(self, side: int) -> int:
        """The smallest side >= ``side`` the model takes."""
        m = max(1, self.input_multiple)
        return -(-max(side, self.min_size) // m) * m

    def sizes_text(self) -> str:
        return f"multiples of {self.input_multiple} and at least {self.min_size}"


@dataclass(frozen=True)
class DatasetSpec:
    """A source of subjects.

    ``factory(seed=..., image_size=..., **options)`` returns a :class:`jmedbench.data.Dataset`.
    A dataset that takes an argument from its name (``nifti:/path/to/dir``) names the keyword
    it is passed as in ``argument``.
    """

    name: str
    factory: Callable[..., Any]
    description: str
    citation: str = ""
    tags: tuple[str, ...] = ()
    argument: str | None = None


@dataclass(frozen=True)
class StrategySpec:
    """A training strategy. ``factory(**options)`` returns a :class:`jmedbench.strategy.Strategy`.

    Strategies named with ``+`` (``ssl+stn``) are composed by the registry from their parts;
    ``components`` names the parts a registered composite stands for (``sas`` = ssl, stn, aug).
    ``reference``: the strategy every other is compared with (the mCE reference, the
    leaderboard README's comparisons, the empty set of an ablation); one plugin sets it.
    ``ablation``: the composite ``jmedbench ablation`` takes apart, its ``components`` being
    the factors. ``needs_encoder``: runs only on models with ``ModelSpec.has_encoder``.
    """

    name: str
    factory: Callable[..., Any]
    description: str
    citation: str = ""
    components: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    reference: bool = False
    ablation: bool = False
    needs_encoder: bool = False


SUBJECT_VALUES = "subject_values"
"""The key under which a dataset-scope metric may return per-subject values (see MetricSpec)."""


@dataclass(frozen=True)
class MetricSpec:
    """A metric.

    scope ``image``: ``compute(pred, target, num_classes, spacing)`` with (H, W) integer label
    maps returns an array of shape (num_classes,) with one value per class (NaN where the
    metric is undefined for that class on that image, see ``worst_case``). Its run metrics are
    means over the slices (per-slice means).

    ``subject_compute`` (image metrics, optional): the same metric once per subject, over all
    of its slices: ``subject_compute(pred, target, num_classes, spacing, contiguous)`` with
    (S, H, W) label maps, ``spacing`` (z, y, x) in mm and ``contiguous`` from
    :attr:`jmedbench.data.Subject.contiguous` returns (num_classes,) values. The engine stores
    them in the run's subject rows under the metric's name (subjects are the unit of the
    leaderboard's statistics) and adds their means over subjects as ``<name>_3d_<class>`` and
    ``<name>_3d``. ``parameters``: constants the metric is computed with (NSD's tolerance),
    stored in every subject row under their own names.

    scope ``dataset``: ``compute(evaluation)`` with a :class:`jmedbench.data.Evaluation`
    (subjects with their predicted label maps) returns a flat dict of named floats; under
    :data:`SUBJECT_VALUES` it may also return ``{subject_id: {name: value}}``, which the engine
    adds to the subject rows of that split (the BMD of each subject, say).

    ``worst_case``: the rule for empty masks and failures, in words (what a missed or spurious
    structure scores, when the metric is undefined), printed in the tables' fine print.
    ``empty_rule`` is its short form for the undefined case.

    ``headline`` (one image metric sets it): the metric that ranks leaderboards, is tuned for
    and is scored under corruption (mPC, rPC, mCE). ``columns``: the keys of this metric's
    results that tables show, and where (see :class:`Column`).
    """

    name: str
    compute: Callable[..., Any]
    scope: Literal["image", "dataset"]
    description: str
    higher_is_better: bool = True
    citation: str = ""
    unit: str = ""
    empty_rule: str = ""
    headline: bool = False
    columns: tuple[Column, ...] = ()
    worst_case: str = ""
    subject_compute: Callable[..., Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CorruptionSpec:
    """An image corruption with severities 1..``severities`` (0 is the identity).

    ``apply(image, label, severity, rng)`` takes a (H, W) float32 HU image, its (H, W) uint8
    label map and a ``numpy.random.Generator`` and returns both, same shapes and dtypes. A
    corruption that moves pixels (``geometric``) moves the label map with them (nearest
    neighbour). ``density`` says how BMD is scored on its output: ``hu`` (HU preserved),
    ``recalibrate`` (HU rebuilt from reference tissues) or ``not_applicable``.
    """

    name: str
    family: str
    apply: Callable[..., Any]
    description: str
    citation: str = ""
    severities: int = 5
    geometric: bool = False
    density: Literal["hu", "recalibrate", "not_applicable"] = "hu"


@dataclass(frozen=True)
class BackendSpec:
    """A framework models can be built, trained and run in (see :mod:`jmedbench.engine.backends`).

    ``factory()`` returns a :class:`jmedbench.engine.backends.Backend`; when the framework is not
    installed it raises :class:`jmedbench.errors.UserError` with the ``install`` command. It is
    called only when a command asks for this backend, so a slow framework import never slows
    down the others.
    """

    name: str
    factory: Callable[..., Any]
    description: str
    install: str = ""
    citation: str = ""
