"""First-party metrics: overlap and surface metrics per image and class and per subject
(:mod:`jmedbench_metrics.overlap`, :mod:`jmedbench_metrics.surface`), density in
:mod:`jmedbench_metrics.density`; each with its worst-case rule (docs/metrics.md)."""

from jmedbench.hookspecs import hookimpl
from jmedbench.specs import Column, MetricSpec

from jmedbench_metrics.density import PICKHARDT_2013, bmd_agreement
from jmedbench_metrics.overlap import accuracy, dice, iou, recall, subject_dice, subject_iou
from jmedbench_metrics.surface import (NSD_TOLERANCE_MM, assd, hd95, nsd, subject_assd,
                                       subject_hd95, subject_nsd)

# Where each number goes in the core's tables (positions: smaller first, see specs.Column).
DICE_COLUMNS = (
    Column("dice", "Dice", 4, description="clean Dice",
           shown={"leaderboard": 10, "run": 10, "summary": 10, "compare": 10}),
    Column("dice_cortical", "Dice cortical (slices)", 4, shown={"run": 22}),
    Column("dice_cancellous", "Dice cancellous (slices)", 4, shown={"run": 23}),
    Column("dice_3d_cortical", "Dice 3-D cortical", 4, shown={"run": 24}),
    Column("dice_3d_cancellous", "Dice 3-D cancellous", 4, shown={"run": 25}),
    Column("shift_dice", "Cross-site Dice", 4, description="cross-site Dice",
           shown={"leaderboard": 40, "run": 40, "summary": 40, "compare": 20, "plot": 2}),
)
IOU_COLUMNS = (Column("iou", "IoU", 4, shown={"leaderboard": 20, "run": 20}),)
HD95_COLUMNS = (Column("hd95", "HD95 mm", 2, False, shown={"leaderboard": 30}),
                Column("hd95_3d", "HD95 3-D mm", 2, False, shown={"run": 32}))
NSD_COLUMNS = (Column("nsd_3d_cortical", "NSD cortical", 4, shown={"run": 26}),
               Column("nsd_3d_cancellous", "NSD cancellous", 4, shown={"run": 27}))
BMD_COLUMNS = (
    Column("bmd_mae", "BMD MAE HU", 2, False, description="BMD MAE (HU)",
           shown={"leaderboard": 70, "run": 70, "summary": 70, "compare": 50, "plot": 1}),
    Column("bmd_failure_rate", "BMD failed", 3, False, description="BMD failure rate",
           shown={"leaderboard": 75, "run": 75}),
    Column("bmd_bias", "BMD bias HU", 2, False, shown={"leaderboard": 80, "run": 80}),
    Column("bmd_mean_mae", "BMD MAE (mean) HU", 2, False, shown={"run": 84}),
    Column("bmd_median_mae", "BMD MAE (median) HU", 2, False, shown={"run": 85}),
    Column("bmd_loa_low", "LoA low", 1, False, shown={"leaderboard": 90}),
    Column("bmd_loa_high", "LoA high", 1, False, shown={"leaderboard": 100}),
    Column("bmd_category_agreement", "Category agr.", 3, shown={"leaderboard": 110}),
    Column("shift_bmd_mae", "Cross-site BMD MAE", 2, False,
           shown={"leaderboard": 120, "run": 120}),
)

EMPTY_RULE = ("truth and prediction both empty for a class: NaN (undefined, not scored, "
              "counted); truth empty but prediction not, or the reverse: 0")
OVERLAP_WORST = ("a class missed (empty prediction, non-empty truth) or predicted where the "
                 "truth has none: 0; truth and prediction both empty: not scored (NaN, counted)")
SURFACE_WORST = ("a class missed (empty prediction, non-empty truth) or predicted where the "
                 "truth has none: the diagonal of the field of view in mm (sqrt of the sum of "
                 "(pixels x spacing)^2 over the axes: the slice's for per-slice and pooled-slice "
                 "scores, the volume's for 3-D ones), more than any measured distance; on pooled "
                 "slices, each slice where only one mask has the class gives its boundary that "
                 "distance; both empty: not scored (NaN, counted); background: not scored")
NSD_WORST = (f"tolerance {NSD_TOLERANCE_MM} mm; a class missed or predicted where the truth "
             "has none: 0 (no boundary pixel within the tolerance); both empty: not scored "
             "(NaN, counted); background: not scored")
BMD_WORST = ("a predicted mask with no cancellous pixel, or whose HU cannot be fitted: BMD "
             "failed (bmd_failed, with the reason; no error is measured), counted in "
             "bmd_failed and bmd_failure_rate, never left out silently; a failure ranks below "
             "any measured error; a ground-truth mask with no cancellous pixel: the subject is "
             "not scored for BMD (bmd_reference_missing)")
SUBJECT = ("; per subject over all of its slices (3-D when contiguous, else per slice with "
           "the boundary points pooled)")


@hookimpl
def jmedbench_metrics():
    return [
        MetricSpec("dice", dice, "image", "Dice similarity coefficient 2|P∩T|/(|P|+|T|) "
                   "(per slice; per subject with the voxels pooled)",
                   citation="Dice, Ecology 26(3), 1945", empty_rule=EMPTY_RULE,
                   worst_case=OVERLAP_WORST, subject_compute=subject_dice,
                   headline=True, columns=DICE_COLUMNS),
        MetricSpec("iou", iou, "image", "Intersection over union |P∩T|/|P∪T| (Jaccard) "
                   "(per slice; per subject with the voxels pooled)",
                   citation="Jaccard, New Phytologist 11(2), 1912", empty_rule=EMPTY_RULE,
                   worst_case=OVERLAP_WORST, subject_compute=subject_iou,
                   columns=IOU_COLUMNS),
        MetricSpec("recall", recall, "image", "Sensitivity |P∩T|/|T|",
                   empty_rule="truth empty: NaN",
                   worst_case="class missed: 0; truth empty: not scored (NaN)"),
        MetricSpec("accuracy", accuracy, "image",
                   "Pixel accuracy per class (TP+TN)/all, one-vs-rest",
                   empty_rule="always defined", worst_case="always defined"),
        MetricSpec("nsd", nsd, "image",
                   f"Normalised surface Dice at {NSD_TOLERANCE_MM} mm: the fraction of both "
                   "boundaries within the tolerance of the other" + SUBJECT,
                   citation="Nikolov et al., J Med Internet Res 23(7), 2021 (as MONAI's "
                            "compute_surface_dice)",
                   empty_rule="both masks empty for a class: NaN (undefined, counted)",
                   worst_case=NSD_WORST, subject_compute=subject_nsd,
                   parameters={"nsd_tolerance_mm": NSD_TOLERANCE_MM}, columns=NSD_COLUMNS),
        MetricSpec("hd95", hd95, "image",
                   "95th-percentile symmetric Hausdorff distance between boundaries (mm)"
                   + SUBJECT,
                   higher_is_better=False, unit="mm",
                   citation="Huttenlocher et al., IEEE TPAMI 15(9), 1993",
                   empty_rule="both masks empty for a class: NaN (undefined, counted)",
                   worst_case=SURFACE_WORST, subject_compute=subject_hd95,
                   columns=HD95_COLUMNS),
        MetricSpec("assd", assd, "image", "Average symmetric surface distance (mm)" + SUBJECT,
                   higher_is_better=False, unit="mm",
                   empty_rule="both masks empty for a class: NaN (undefined, counted)",
                   worst_case=SURFACE_WORST, subject_compute=subject_assd),
        MetricSpec("bmd", bmd_agreement, "dataset",
                   "BMD (Johnson-Su mode of cancellous HU) from the predicted mask against the "
                   "ground-truth mask and the true BMD: MAE, bias, Bland-Altman limits, r, "
                   "bone-status agreement (L1 110/160 HU), age-slope error, failure rate; the "
                   "mean and median of the same pixels as simpler estimators",
                   higher_is_better=False, unit="HU",
                   citation="Johnson, Biometrika 36(1/2), 1949; Bland & Altman, Lancet 1986; "
                            + PICKHARDT_2013,
                   empty_rule="empty predicted cancellous mask: BMD failed (counted in "
                              "bmd_failed and bmd_failure_rate)",
                   worst_case=BMD_WORST, columns=BMD_COLUMNS),
    ]
