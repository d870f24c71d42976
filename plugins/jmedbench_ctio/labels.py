"""Vertebra label maps -> cortical / cancellous labels of the L1 and L2 bodies: the core's
:mod:`jmedbench.vertebrae` (moved there so that ``jmedbench predict`` locates L1/L2 exactly as
this plugin's loader does, without the core importing a plugin), re-exported under the name
this plugin and its users have always imported."""

from jmedbench.vertebrae import (CANAL_MARGIN_MM, CANCELLOUS, CONVENTIONS, CORTICAL,
                                 DEFAULT_EROSION_MM, DEFAULT_OPENING_MM, MIN_CANAL_MM2,
                                 PEDICLE_DETACH_MM, TOTALSEG_VERTEBRA_RANGE, TOTALSEGMENTATOR,
                                 VERSE, Convention, L1L2Bodies, LabelMapError, body_by_canal,
                                 body_by_opening, canal_front_row, detect_convention,
                                 l1l2_bodies, l1l2_labels, resolve_convention, split_bodies,
                                 split_body)

__all__ = ["CANAL_MARGIN_MM", "CANCELLOUS", "CONVENTIONS", "CORTICAL", "DEFAULT_EROSION_MM",
           "DEFAULT_OPENING_MM", "MIN_CANAL_MM2", "PEDICLE_DETACH_MM", "TOTALSEG_VERTEBRA_RANGE",
           "TOTALSEGMENTATOR", "VERSE", "Convention", "L1L2Bodies", "LabelMapError",
           "body_by_canal", "body_by_opening", "canal_front_row", "detect_convention",
           "l1l2_bodies", "l1l2_labels", "resolve_convention", "split_bodies", "split_body"]
