"""First-party metrics: overlap per image and class (this module), density in
:mod:`jmedbench_metrics.density`."""

from jmedbench.hookspecs import hookimpl
from jmedbench.specs import Column, MetricSpec

from jmedbench_metrics.density import PICKHARDT_2013, bmd_agreement
from jmedbench_metrics.overlap import accuracy, dice, iou, recall
from jmedbench_metrics.surface import assd, hd95

# Where each number goes in the core's tables (positions: smaller first, see specs.Column).
DICE_COLUMNS = (
    Column("dice", "Dice", 4, description="clean Dice",
           shown={"leaderboard": 10, "run": 10, "summary": 10, "compare": 10}),
    Column("dice_cortical", "Dice cortical", 4, shown={"run": 22}),
    Column("dice_cancellous", "Dice cancellous", 4, shown={"run": 23}),
    Column("shift_dice", "Cross-site Dice", 4, description="cross-site Dice",
           shown={"leaderboard": 40, "run": 40, "summary": 40, "compare": 20, "plot": 2}),
)
IOU_COLUMNS = (Column("iou", "IoU", 4, shown={"leaderboard": 20, "run": 20}),)
HD95_COLUMNS = (Column("hd95", "HD95 mm", 2, False, shown={"leaderboard": 30}),)
BMD_COLUMNS = (
    Column("bmd_mae", "BMD MAE HU", 2, False, description="BMD MAE (HU)",
           shown={"leaderboard": 70, "run": 70, "summary": 70, "compare": 50, "plot": 1}),
    Column("bmd_bias", "BMD bias HU", 2, False, shown={"leaderboard": 80, "run": 80}),
    Column("bmd_loa_low", "LoA low", 1, False, shown={"leaderboard": 90}),
    Column("bmd_loa_high", "LoA high", 1, False, shown={"leaderboard": 100}),
    Column("bmd_category_agreement", "Category agr.", 3, shown={"leaderboard": 110}),
    Column("shift_bmd_mae", "Cross-site BMD MAE", 2, False,
           shown={"leaderboard": 120, "run": 120}),
)

EMPTY_RULE = ("truth and prediction both empty for a class: NaN (undefined, excluded from the "
              "mean and counted); truth empty but prediction not: 0")


@hookimpl
def jmedbench_metrics():
    return [
        MetricSpec("dice", dice, "image", "Dice similarity coefficient 2|P∩T|/(|P|+|T|)",
                   citation="Dice, Ecology 26(3), 1945", empty_rule=EMPTY_RULE,
                   headline=True, columns=DICE_COLUMNS),
        MetricSpec("iou", iou, "image", "Intersection over union |P∩T|/|P∪T| (Jaccard)",
                   citation="Jaccard, New Phytologist 11(2), 1912", empty_rule=EMPTY_RULE,
                   columns=IOU_COLUMNS),
        MetricSpec("recall", recall, "image", "Sensitivity |P∩T|/|T|",
                   empty_rule="truth empty: NaN"),
        MetricSpec("accuracy", accuracy, "image",
                   "Pixel accuracy per class (TP+TN)/all, one-vs-rest",
                   empty_rule="always defined"),
        MetricSpec("hd95", hd95, "image",
                   "95th-percentile symmetric Hausdorff distance between boundaries (mm)",
                   higher_is_better=False, unit="mm",
                   citation="Huttenlocher et al., IEEE TPAMI 15(9), 1993",
                   empty_rule="either mask empty for a class: NaN (undefined, counted)",
                   columns=HD95_COLUMNS),
        MetricSpec("assd", assd, "image", "Average symmetric surface distance (mm)",
                   higher_is_better=False, unit="mm",
                   empty_rule="either mask empty for a class: NaN (undefined, counted)"),
        MetricSpec("bmd", bmd_agreement, "dataset",
                   "BMD (Johnson-Su mode of cancellous HU) from the predicted mask against the "
                   "ground-truth mask and the true BMD: MAE, bias, Bland-Altman limits, r, "
                   "bone-status agreement (L1 110/160 HU), age-slope error",
                   higher_is_better=False, unit="HU",
                   citation="Johnson, Biometrika 36(1/2), 1949; Bland & Altman, Lancet 1986; "
                            + PICKHARDT_2013,
                   empty_rule="empty predicted cancellous mask: counted in bmd_failed, "
                              "excluded from the errors",
                   columns=BMD_COLUMNS),
    ]
