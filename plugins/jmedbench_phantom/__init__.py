"""The built-in synthetic vertebral CT with known BMD (the default dataset) and its cross-site
view. Documented in docs/phantom.md."""

from jmedbench.hookspecs import hookimpl
from jmedbench.specs import DatasetSpec

from jmedbench_phantom.dataset import make_phantom_dataset, view

CITATION = ("Age law D = -k*A + Z per sex and site from the source paper's group statistics "
            "(see docs/phantom.md); Johnson-Su: Johnson, Biometrika 36(1/2), 1949")


@hookimpl
def jmedbench_datasets():
    return [
        DatasetSpec("phantom", make_phantom_dataset,
                    "Synthetic L1/L2 axial CT with known BMD: train/val/test from site N (3 mm), "
                    "'shift' from site S (5 mm, softer kernel, larger vertebrae, calibration "
                    "offset); cancellous HU from a Johnson-Su whose mode follows the paper's "
                    "age law", citation=CITATION, tags=("synthetic", "default", "cross-site")),
        DatasetSpec("phantom-s", view("S"),
                    "The phantom the other way round: train/val/test from site S, 'shift' from "
                    "site N (options under [data.phantom-s])", citation=CITATION,
                    tags=("synthetic", "cross-site")),
    ]
