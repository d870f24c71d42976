"""Real CT for jmedbench: NIfTI / DICOM reading, VerSe and TotalSegmentator vertebra label maps,
cortical/cancellous labels of the L1/L2 bodies, and two datasets: ``example`` (TotalSegmentator's
test CT, built in) and ``nifti:<dir>`` (a user's folder; layout in docs/datasets.md).

Volume reading itself lives in :mod:`jmedbench.volumes` (core, shared with commands).
"""

from jmedbench.hookspecs import hookimpl
from jmedbench.specs import DatasetSpec

from jmedbench_ctio.dataset import make_example_dataset, make_nifti_dataset
from jmedbench_ctio.labels import TOTALSEGMENTATOR, VERSE
from jmedbench_ctio.references import make_example_dicom_dataset, make_tptbox_dataset


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
        DatasetSpec("example-dicom", make_example_dicom_dataset,
                    "The example's separate DICOM series (0.98 mm pixels, 3 mm slices): T11/T12 "
                    "with bodies found in front of the spinal canal in TotalSegmentator's "
                    "predicted vertebrae. One subject in 'test', for realism checks",
                    citation=TOTALSEGMENTATOR.citation, tags=("real", "ct", "evaluation")),
        DatasetSpec("tptbox-l3", make_tptbox_dataset,
                    "A real L3 at 1.5 mm (TPTBox sample, Apache-2.0) with a manually marked "
                    "vertebral body. One subject in 'test', for realism checks",
                    citation="TPTBox, github.com/Hendrik-code/TPTBox (tests/sample_ct)",
                    tags=("real", "ct", "evaluation")),
    ]
