"""Bone mineral density from CT: Johnson-Su fits and their mode, BMD from masks, cohorts.

See docs/density.md for the method, the formulas and the conventions (HU vs stored values).
"""

from jmedbench.density.bmd import (STORED_VALUE_OFFSET, BmdChecks, BmdResult, EmptyMaskError,
                                   bmd_from_mask, bmd_from_values)
from jmedbench.density.johnsonsu import JohnsonSuFit, fit_johnson_su, johnson_su_mode

__all__ = ["BmdChecks", "BmdResult", "EmptyMaskError", "JohnsonSuFit", "STORED_VALUE_OFFSET",
           "bmd_from_mask", "bmd_from_values", "fit_johnson_su", "johnson_su_mode"]
