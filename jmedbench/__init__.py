"""jmedbench: benchmark segmentation models by the clinical measurement built on their masks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jmedbench")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
