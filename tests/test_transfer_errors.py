"""benchmarks/transfer_errors.py: the error breakdown of a prediction against known answers."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "transfer_errors.py"
_spec = importlib.util.spec_from_file_location("transfer_errors", _PATH)
transfer_errors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(transfer_errors)


def _body_slice(inner: int) -> np.ndarray:
    """A 64 x 64 slice: a 28 x 28 body whose centred inner x inner square is cancellous (2),
    the rest of the body cortical (1)."""
    label = np.zeros((64, 64), np.uint8)
    label[18:46, 18:46] = 1
    lo = 32 - inner // 2
    label[lo:lo + inner, lo:lo + inner] = 2
    return label


def test_a_prediction_one_pixel_inside_the_label():
    label = _body_slice(20)[None]
    pred = _body_slice(18)[None]        # the cancellous edge one pixel further in
    got = transfer_errors.error_breakdown([pred], [label])
    assert got["recall"] == pytest.approx(18 * 18 / 400)
    assert got["precision"] == 1.0
    assert got["missed_as_cortical"] == 400 - 324
    assert got["missed_as_background"] == 0
    assert got["added_from_background"] == got["added_from_cortical"] == 0
    assert got["edge_offset_px"] == pytest.approx(-1.0)
    assert got["dice"] == pytest.approx(2 * 324 / (400 + 324))
    assert got["disc_slices"] == 0


def test_identical_edges_have_zero_offset_and_a_larger_prediction_a_positive_one():
    label = _body_slice(20)[None]
    assert transfer_errors.error_breakdown([label], [label])["edge_offset_px"] == 0.0
    grown = transfer_errors.error_breakdown([_body_slice(24)[None]], [label])
    # a ring 2 px outside: 80 of its 92 pixels lie straight out; at each corner one lies
    # (2, 2) from the label's corner and two lie (2, 1) from it
    corners = 4 * (8 ** 0.5 + 2 * 5 ** 0.5)
    assert grown["edge_offset_px"] == pytest.approx((80 * 2 + corners) / 92)
    assert grown["added_from_cortical"] == 24 * 24 - 400
    assert grown["precision"] == pytest.approx(400 / 576)


def test_false_positives_on_disc_slices_are_counted_per_slice():
    body = _body_slice(20)
    disc = np.zeros((64, 64), np.uint8)          # nothing labelled: a disc
    label = np.stack([body, disc, disc])
    pred = label.copy()
    pred[1, 5:10, 5:11] = 2                      # 30 pixels on the first disc slice
    got = transfer_errors.error_breakdown([pred], [label])
    assert got["disc_slices"] == 2
    assert got["disc_fp_per_slice"] == pytest.approx(15.0)
    assert got["added_from_background"] == 30
    assert got["recall"] == 1.0
