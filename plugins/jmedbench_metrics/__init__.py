"""First-party metrics: overlap per image and class (this module), density in
:mod:`jmedbench_metrics.density`."""

from jmedbench.hookspecs import hookimpl
from jmedbench.specs import MetricSpec

from jmedbench_metrics.density import PICKHARDT_2013, bmd_agreement
from jmedbench_metrics.overlap import accuracy, dice, iou, recall
from jmedbench_metrics.surface import assd, hd95

EMPTY_RULE = ("truth and prediction both empty for a class: NaN (undefined, excluded from the "
              "mean and counted); truth empty but prediction not: 0")


@hookimpl
def jmedbench_metrics():
    return [
        MetricSpec("dice", dice, "image", "Dice similarity coefficient 2|P∩T|/(|P|+|T|)",
                   citation="Dice, Ecology 26(3), 1945", empty_rule=EMPTY_RULE),
        MetricSpec("iou", iou, "image", "Intersection over union |P∩T|/|P∪T| (Jaccard)",
                   citation="Jaccard, New Phytologist 11(2), 1912", empty_rule=EMPTY_RULE),
        MetricSpec("recall", recall, "image", "Sensitivity |P∩T|/|T|",
                   empty_rule="truth empty: NaN"),
        MetricSpec("accuracy", accuracy, "image",
                   "Pixel accuracy per class (TP+TN)/all, one-vs-rest",
                   empty_rule="always defined"),
        MetricSpec("hd95", hd95, "image",
                   "95th-percentile symmetric Hausdorff distance between boundaries (mm)",
                   higher_is_better=False, unit="mm",
                   citation="Huttenlocher et al., IEEE TPAMI 15(9), 1993",
                   empty_rule="either mask empty for a class: NaN (undefined, counted)"),
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
                              "excluded from the errors"),
    ]
