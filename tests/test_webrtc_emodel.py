"""ITU-T G.107 simplified E-model: known values from the recommendation and monotonicity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livesqa.errors import ConfigError
from livesqa.webrtc.emodel import (
    EModelParams,
    burst_ratio,
    delay_impairment,
    effective_equipment_impairment,
    estimate_mos,
    mos_from_r,
    r_factor,
)


def test_defaults_give_the_g107_reference_rating() -> None:
    # no loss, no delay: R = 93.2 -> MOS 4.41 (G.107 default connection)
    assert r_factor(0.0, 0.0) == pytest.approx(93.2)
    assert mos_from_r(93.2) == pytest.approx(4.409, abs=1e-3)


def test_mos_from_r_limits_and_a_midpoint() -> None:
    assert mos_from_r(-5.0) == 1.0
    assert mos_from_r(120.0) == 4.5
    # R = 50: 1 + 1.75 + 50*(-10)*50*7e-6 = 2.575
    assert mos_from_r(50.0) == pytest.approx(2.575)


def test_ie_eff_matches_equation_7_29() -> None:
    params = EModelParams(codec_ie=0.0, codec_bpl=25.1)
    assert effective_equipment_impairment(5.0, 1.0, params) == pytest.approx(95 * 5 / (5 + 25.1))
    bursty = effective_equipment_impairment(5.0, 2.0, params)
    assert bursty == pytest.approx(95 * 5 / (2.5 + 25.1))
    assert bursty > effective_equipment_impairment(5.0, 1.0, params)


def test_delay_impairment_knee() -> None:
    assert delay_impairment(100.0) == pytest.approx(2.4)
    assert delay_impairment(200.0) == pytest.approx(0.024 * 200 + 0.11 * 22.7)


def test_burst_ratio_is_one_for_random_loss() -> None:
    loss = 0.1
    random_mean_burst = 1.0 / (1.0 - loss)  # geometric bursts of independent losses
    assert burst_ratio(loss, random_mean_burst) == pytest.approx(1.0)
    assert burst_ratio(loss, 5.0) == pytest.approx(4.5)
    assert burst_ratio(0.0, 5.0) == 1.0


@given(st.floats(0, 50), st.floats(0, 50), st.floats(0, 200))
def test_mos_never_improves_with_more_loss_or_jitter(loss: float, extra: float, jitter: float) -> None:
    base = estimate_mos(loss, jitter)
    assert 1.0 <= base <= 4.5
    assert estimate_mos(loss + extra, jitter) <= base + 1e-9
    assert estimate_mos(loss, jitter + extra) <= base + 1e-9


def test_ten_percent_random_loss_is_a_poor_call() -> None:
    assert estimate_mos(10.0, 5.0) < 3.6 < estimate_mos(1.0, 5.0)


def test_invalid_params_are_refused() -> None:
    with pytest.raises(ConfigError):
        EModelParams(codec_bpl=0.0)
