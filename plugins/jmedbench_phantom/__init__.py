"""The built-in synthetic vertebral CT with known BMD (the default dataset)."""

from jmedbench.hookspecs import hookimpl
from jmedbench.specs import DatasetSpec

from jmedbench_phantom.dataset import make_phantom_dataset


@hookimpl
def jmedbench_datasets():
    return [
        DatasetSpec("phantom", make_phantom_dataset,
                    "Synthetic L1/L2 axial CT, two sites (N 3 mm, S 5 mm), cancellous HU drawn "
                    "from a Johnson-Su whose mode follows the paper's age law; train/val/test "
                    "from site N, 'shift' from site S",
                    tags=("synthetic", "default")),
    ]
