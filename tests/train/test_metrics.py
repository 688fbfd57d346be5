import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from train import metrics, text


def test_vocabulary_layout_and_roundtrip() -> None:
    assert text.VOCAB_SIZE == 29
    assert text.SYMBOLS[text.BLANK] == "" and text.SYMBOLS[1] == " " and text.SYMBOLS[2] == "'"
    assert text.SYMBOLS[3] == "A" and text.SYMBOLS[28] == "Z"
    ids = text.encode("it's  a Test!")
    assert ids == [11, 22, 2, 21, 1, 3, 1, 22, 7, 21, 22]
    assert text.decode(ids) == "IT'S A TEST"
    assert text.BLANK not in text.encode("a-b c")


def test_pcc_and_rmse_known_values() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert metrics.pcc(x, 2 * x + 1) == pytest.approx(1.0)
    assert metrics.pcc(x, -x) == pytest.approx(-1.0)
    assert metrics.rmse(x, x + 0.5) == pytest.approx(0.5)
    # hand-computed: x=[1,2,3], y=[1,3,2] -> r = 0.5
    assert metrics.pcc([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert math.isnan(metrics.pcc([1, 1, 1], [1, 2, 3]))


def test_nan_pairs_are_dropped() -> None:
    pred = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    target = np.array([1.0, 2.0, 3.0, np.nan, 5.0])
    assert metrics.pcc(pred, target) == pytest.approx(1.0)
    assert metrics.rmse(pred, target) == pytest.approx(0.0)
    table = metrics.per_dimension(np.c_[pred, pred], np.c_[target, target + 1], ["a", "b"])
    assert table["a"]["n"] == 3 and table["b"]["rmse"] == pytest.approx(1.0)


def test_cer_wer() -> None:
    assert metrics.edit_distance("kitten", "sitting") == 3
    assert metrics.cer(["ABC"], ["ABC"]) == 0.0
    assert metrics.cer(["ABCD"], ["ABXD"]) == pytest.approx(0.25)
    assert metrics.wer(["THE CAT SAT", "HI"], ["THE BAT SAT DOWN", "HI"]) == pytest.approx(2 / 4)


def test_greedy_ctc_decode_collapses_repeats_and_blanks() -> None:
    # frames: H H _ E L _ L O (padding beyond length) -> "HELLO"
    h, e, l_, o = (text.encode(c)[0] for c in "HELO")
    path = [h, h, 0, e, l_, 0, l_, o, o, h]
    lp = np.full((1, len(path), text.VOCAB_SIZE), -10.0, dtype=np.float32)
    lp[0, np.arange(len(path)), path] = 0.0
    assert metrics.greedy_ctc_decode(lp, [9]) == ["HELLO"]
    assert metrics.greedy_ctc_decode(torch.from_numpy(lp), torch.tensor([2])) == ["H"]
    assert metrics.greedy_ctc_decode(lp, [0]) == [""]
