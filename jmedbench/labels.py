"""The label convention every dataset, model, metric and density measurement shares: one
input channel (HU), three classes, and the scanner's stored-value offset.

Label maps are uint8: 0 background, 1 cortical bone, 2 cancellous bone (of the L1/L2 vertebral
bodies). Models map (B, IN_CHANNELS, H, W) to logits (B, NUM_CLASSES, H, W).
"""

from __future__ import annotations

CLASS_NAMES = ("background", "cortical", "cancellous")
"""Label values of every dataset: 0 background, 1 cortical bone, 2 cancellous bone."""

BACKGROUND_LABEL, CORTICAL_LABEL, CANCELLOUS_LABEL = range(len(CLASS_NAMES))
NUM_CLASSES = len(CLASS_NAMES)
IN_CHANNELS = 1  # one CT channel, in HU (see jmedbench.engine.preprocess)

STORED_VALUE_OFFSET = 1024.0
"""Stored CT value = HU + 1024 (RescaleIntercept -1024), the paper's unit."""


def class_name(value: int) -> str:
    """The name of label ``value`` (``class<value>`` beyond the convention's classes)."""
    return CLASS_NAMES[value] if 0 <= value < len(CLASS_NAMES) else f"class{value}"
