"""Jittor twins of the zoo's models, one module per zoo family module."""

from jmedbench_jittor.runtime import import_jittor

import_jittor()  # sets CPU-only / oneDNN before any model module imports Jittor
