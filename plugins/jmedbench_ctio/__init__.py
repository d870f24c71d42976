"""Real CT for jmedbench: NIfTI / DICOM reading, VerSe and TotalSegmentator vertebra label maps,
cortical/cancellous labels of the L1/L2 bodies, and two datasets: ``example`` (TotalSegmentator's
test CT, built in) and ``nifti:<dir>`` (a user's folder; layout in docs/datasets.md).

Volume reading itself lives in :mod:`jmedbench.volumes` (core, shared with commands).
"""

from jmedbench.hookspecs import hookimpl
from jmedbench.specs import DatasetSpec

from jmedbench_ctio.dataset import make_example_dataset, make_nifti_dataset
from jmedbench_ctio.labels import TOTALSEGMENTATOR, VERSE


@hookimpl
def jmedbench_datasets():
    return [
        DatasetSpec("example", make_example_dataset,
                    "Real abdominal CT of one man, 55 (TotalSegmentator's test case, Apache-2.0, "
                    "3 mm voxels): the axial slices through L1/L2 with cortical/cancellous labels "
                    "derived from its vertebra and vertebral-body masks. One subject in split "
                    "'test': an evaluation case, far too small to train on",
                    citation=TOTALSEGMENTATOR.citation,
                    tags=("real", "ct", "evaluation")),
        DatasetSpec("nifti", make_nifti_dataset,
                    "Your CTs: <dir>/<subject>/ct.nii.gz + vertebrae.nii.gz (VerSe or "
                    "TotalSegmentator labels) [+ vertebral_bodies.nii.gz], optional "
                    "<dir>/subjects.csv (subject,sex,age,site); split by subject with the seed",
                    citation=f"{VERSE.citation}; {TOTALSEGMENTATOR.citation}",
                    tags=("real", "ct"), argument="path"),
    ]
