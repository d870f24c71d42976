"""Bone mineral density from CT: Johnson-Su fits and their mode, BMD from masks, cohorts."""

from jmedbench.density.johnsonsu import johnson_su_mode

__all__ = ["johnson_su_mode"]
