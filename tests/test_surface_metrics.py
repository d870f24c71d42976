"""Surface metrics (HD95, ASSD, NSD) and overlap per slice and per subject: agreement with MONAI
on random label maps with anisotropic spacing (2-D and 3-D), known answers, the stated worst
cases, the pooled-slice rule, and properties over many random masks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from jmedbench_metrics.overlap import dice, iou, subject_dice, subject_iou
from jmedbench_metrics.surface import (NSD_TOLERANCE_MM, assd, fov_diagonal, hd95, nsd,
                                       subject_assd, subject_hd95, subject_nsd,
                                       surface_distances)

monai_metrics = pytest.importorskip("monai.metrics")
torch = pytest.importorskip("torch")


def random_labels(rng, shape, blobs=True):
    """A label map 0/1/2 of smooth random blobs (structures with real boundaries)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    lo, hi = np.quantile(field, [0.55, 0.8])
    return np.digitize(field, [lo, hi]).astype(np.uint8)


def one_hot(labels, num_classes=3):
    return torch.nn.functional.one_hot(torch.as_tensor(labels, dtype=torch.long),
                                       num_classes).movedim(-1, 0)[None].float()


def monai_scores(pred, truth, spacing, tolerance):
    p, t = one_hot(pred), one_hot(truth)
    out = {
        "dice": monai_metrics.compute_dice(p, t, include_background=True),
        "iou": monai_metrics.compute_iou(p, t, include_background=True),
        "hd95": monai_metrics.compute_hausdorff_distance(p, t, percentile=95, spacing=spacing),
        "assd": monai_metrics.compute_average_surface_distance(p, t, symmetric=True,
                                                               spacing=spacing),
        "nsd": monai_metrics.compute_surface_dice(p, t, [tolerance, tolerance],
                                                  spacing=spacing),
    }
    return {k: v[0].numpy().astype(np.float64) for k, v in out.items()}


@pytest.mark.parametrize("shape, spacing", [((48, 40), (0.8, 1.1)),
                                            ((6, 32, 28), (3.0, 0.9, 0.7))])
def test_agree_with_monai_on_random_label_maps(shape, spacing):
    rng = np.random.default_rng(len(shape))
    ours = {"dice": dice, "iou": iou, "hd95": hd95, "assd": assd, "nsd": nsd}
    compared = 0
    for _ in range(4):
        truth = random_labels(rng, shape)
        pred = random_labels(rng, shape) if rng.random() < 0.5 else np.where(
            rng.random(shape) < 0.1, rng.integers(0, 3, shape), truth).astype(np.uint8)
        reference = monai_scores(pred, truth, spacing, NSD_TOLERANCE_MM)
        for name, compute in ours.items():
            value = compute(pred, truth, 3, spacing)
            foreground = value if name in ("dice", "iou") else value[1:]
            expected = reference[name]  # MONAI leaves the background out of surface metrics
            assert np.allclose(foreground, expected, rtol=1e-5, atol=1e-5), (name, value,
                                                                            expected)
            compared += 1
    assert compared == 20


def test_subject_scores_on_contiguous_slices_are_3d_monai_scores():
    rng = np.random.default_rng(7)
    shape, spacing = (5, 30, 30), (2.5, 0.8, 0.8)
    truth, pred = random_labels(rng, shape), random_labels(rng, shape)
    reference = monai_scores(pred, truth, spacing, NSD_TOLERANCE_MM)
    for name, compute in (("hd95", subject_hd95), ("assd", subject_assd),
                          ("nsd", subject_nsd)):
        assert np.allclose(compute(pred, truth, 3, spacing, True)[1:], reference[name],
                           rtol=1e-5, atol=1e-5)
    assert np.allclose(subject_dice(pred, truth, 3, spacing, False), reference["dice"])
    assert np.allclose(subject_iou(pred, truth, 3, spacing, True), reference["iou"])


def test_pooled_slices_are_monai_edges_and_distances_per_slice():
    """Non-contiguous slices: each slice's boundary distances (MONAI's, in 2-D) are pooled,
    then one statistic over the pool."""
    from monai.metrics.utils import get_edge_surface_distance
    rng = np.random.default_rng(3)
    truth = random_labels(rng, (4, 36, 36))
    pred = np.where(rng.random(truth.shape) < 0.08, 0, truth).astype(np.uint8)
    pred = np.roll(pred, 1, axis=2)
    spacing = (5.0, 0.9, 1.2)
    for c in (1, 2):
        forward, backward = [], []
        for p, t in zip(pred, truth):
            _, (d_pt, d_tp), _ = get_edge_surface_distance(
                torch.as_tensor(p == c), torch.as_tensor(t == c), spacing=spacing[1:],
                symmetric=True)
            forward.append(d_pt.numpy())
            backward.append(d_tp.numpy())
        forward, backward = np.concatenate(forward), np.concatenate(backward)
        pool = np.concatenate([forward, backward])
        expected_hd95 = max(np.percentile(forward, 95), np.percentile(backward, 95))
        assert subject_hd95(pred, truth, 3, spacing)[c] == pytest.approx(expected_hd95,
                                                                          rel=1e-5)
        assert subject_assd(pred, truth, 3, spacing)[c] == pytest.approx(pool.mean(), rel=1e-5)
        assert subject_nsd(pred, truth, 3, spacing)[c] == pytest.approx(
            np.mean(pool <= NSD_TOLERANCE_MM), abs=1e-9)


def shifted_squares():
    truth = np.zeros((20, 20), np.uint8)
    truth[5:10, 5:10] = 1
    pred = np.zeros_like(truth)
    pred[5:10, 8:13] = 1  # moved 3 columns: 1.5 mm at 0.5 mm per column
    return pred, truth


def test_square_against_shifted_square_known_answers():
    """Each 5x5 boundary has 16 pixels; from the moved square's: 4 at 0 mm, 5 at 0.5, 2 at 1.0,
    5 at 1.5 (the same the other way): NSD at 1.25 mm = 22/32, HD95 1.5, ASSD 12/16."""
    pred, truth = shifted_squares()
    spacing = (2.0, 0.5)
    assert nsd(pred, truth, 3, spacing)[1] == pytest.approx(22 / 32)
    assert nsd(pred, truth, 3, spacing, tolerance=1.5)[1] == 1.0
    assert nsd(pred, truth, 3, spacing, tolerance=0.25)[1] == pytest.approx(8 / 32)
    assert hd95(pred, truth, 3, spacing)[1] == pytest.approx(1.5)
    assert assd(pred, truth, 3, spacing)[1] == pytest.approx(0.75)
    assert dice(pred, truth, 3)[1] == pytest.approx(2 * 10 / 50)
    assert iou(pred, truth, 3)[1] == pytest.approx(10 / 40)


@pytest.mark.parametrize("missed", ["prediction", "truth"])
def test_worst_case_when_one_mask_is_empty(missed):
    """Missed (empty prediction) or spurious (empty truth): Dice, IoU, NSD 0; HD95 and ASSD the
    diagonal of the field of view, sqrt((20*2)^2 + (20*0.5)^2) mm; both empty: not scored."""
    _, square = shifted_squares()
    empty = np.zeros_like(square)
    pred, truth = (empty, square) if missed == "prediction" else (square, empty)
    diagonal = np.sqrt(40.0 ** 2 + 10.0 ** 2)
    assert fov_diagonal(square.shape, (2.0, 0.5)) == pytest.approx(diagonal)
    assert dice(pred, truth, 3)[1] == 0.0 and iou(pred, truth, 3)[1] == 0.0
    assert nsd(pred, truth, 3, (2.0, 0.5))[1] == 0.0
    assert hd95(pred, truth, 3, (2.0, 0.5))[1] == pytest.approx(diagonal)
    assert assd(pred, truth, 3, (2.0, 0.5))[1] == pytest.approx(diagonal)
    for compute in (dice, iou, nsd, hd95, assd):
        assert np.isnan(compute(pred, truth, 3, (2.0, 0.5))[2])      # class 2 in neither
        assert np.isnan(compute(empty, empty, 3, (2.0, 0.5))[1])
    for compute in (nsd, hd95, assd):
        assert np.isnan(compute(square, square, 3, (2.0, 0.5))[0])  # background not scored


def test_pooled_slices_give_a_missed_slice_the_slice_diagonal():
    """Two slices, the first perfect, the second missed: its 16 truth boundary pixels are at the
    slice diagonal, the other 32 at 0: NSD 2/3, ASSD diagonal / 3, HD95 the diagonal. In 3-D
    (contiguous) the missed slice's truth is 1 slice (3 mm) from the prediction instead."""
    _, square = shifted_squares()
    truth = np.stack([square, square])
    pred = np.stack([square, np.zeros_like(square)])
    spacing = (3.0, 1.0, 1.0)
    diagonal = np.sqrt(2 * 20.0 ** 2)
    assert subject_nsd(pred, truth, 3, spacing)[1] == pytest.approx(2 / 3)
    assert subject_assd(pred, truth, 3, spacing)[1] == pytest.approx(diagonal / 3)
    assert subject_hd95(pred, truth, 3, spacing)[1] == pytest.approx(diagonal)
    assert subject_hd95(pred, truth, 3, spacing, True)[1] == pytest.approx(3.0)
    whole = np.zeros_like(truth)
    assert subject_hd95(whole, truth, 3, spacing, True)[1] == pytest.approx(
        np.sqrt(6.0 ** 2 + 2 * 20.0 ** 2))                          # the volume's diagonal
    assert subject_nsd(whole, truth, 3, spacing, True)[1] == 0.0
    assert subject_dice(whole, truth, 3)[1] == 0.0


def test_properties_over_random_masks():
    """Symmetric in prediction and truth; 0 mm and NSD 1 for identical masks; bounded by the
    diagonal; NSD 1 at a tolerance of the largest distance, and never less at a larger one;
    distances twice as long at twice the spacing."""
    rng = np.random.default_rng(11)
    for _ in range(60):
        shape = tuple(int(n) for n in rng.integers(8, 24, size=2))
        spacing = tuple(float(s) for s in rng.uniform(0.4, 2.0, size=2))
        a = rng.random(shape) < rng.uniform(0.02, 0.5)
        b = rng.random(shape) < rng.uniform(0.02, 0.5)
        d = surface_distances(a, b, spacing)
        if d is None:
            continue
        top = max(x.max() for x in d if x.size)
        diagonal = fov_diagonal(shape, spacing)
        pa, pb = a.astype(np.uint8), b.astype(np.uint8)
        for compute in (hd95, assd, nsd):
            assert compute(pa, pb, 2, spacing)[1] == pytest.approx(compute(pb, pa, 2, spacing)[1])
        assert 0.0 <= assd(pa, pb, 2, spacing)[1] <= top
        assert hd95(pa, pb, 2, spacing)[1] <= top <= diagonal
        low = nsd(pa, pb, 2, spacing, tolerance=0.5)[1]
        assert 0.0 <= low <= nsd(pa, pb, 2, spacing, tolerance=1.5)[1] <= 1.0
        assert nsd(pa, pb, 2, spacing, tolerance=top)[1] == 1.0
        assert hd95(pa, pa, 2, spacing)[1] == 0.0 and nsd(pa, pa, 2, spacing)[1] == 1.0
        doubled = tuple(2 * s for s in spacing)  # distances scale with the spacing
        assert hd95(pa, pb, 2, doubled)[1] == pytest.approx(2 * hd95(pa, pb, 2, spacing)[1])
        assert assd(pa, pb, 2, doubled)[1] == pytest.approx(2 * assd(pa, pb, 2, spacing)[1])
