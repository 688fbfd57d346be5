"""ITU-T G.107 E-model, simplified to what a receiver can measure: loss, burstiness, delay.

Why: the perceptual scores say *how* a call sounds; the E-model says what the network alone
predicts. Putting both side by side lets a Discontinuity drop be matched to a loss burst.

What is kept of G.107 (narrowband, all other parameters at their defaults):

- ``R = R0 - Is - Id - Ie_eff + A`` with ``R0 - Is = 93.2`` (defaults) and ``A = 0``.
- ``Ie_eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)`` (G.107 eq. 7-29), ``Ppl`` in percent.
- ``Id`` from the one-way mouth-to-ear delay ``Ta`` with the Cole & Rosenbluth (2001) fit of the
  G.107 delay curve for default echo settings: ``0.024 Ta + 0.11 (Ta - 177.3) H(Ta - 177.3)``.
- ``MOS_CQE`` from ``R`` as in G.107 Annex B (1 below R=0, 4.5 at R>=100).

Opus has no G.113 entry; the default ``Ie = 0, Bpl = 25.1`` are G.113's G.711-with-PLC values,
a stand-in for a modern codec with loss concealment. Jitter enters only through delay: a receiver
sizes its jitter buffer at about twice the jitter (see :func:`one_way_delay_ms`).
"""

from __future__ import annotations

from dataclasses import dataclass

from livesqa.errors import ConfigError

R0_MINUS_IS_DEFAULT = 93.2  # G.107 with every parameter at its default value
DELAY_KNEE_MS = 177.3  # Cole & Rosenbluth: Id grows faster beyond this one-way delay
MOS_AT_R100 = 4.5


@dataclass(frozen=True)
class EModelParams:
    """Codec and setting constants; validated once."""

    codec_ie: float = 0.0  # equipment impairment at zero loss (G.113 App. I)
    codec_bpl: float = 25.1  # packet-loss robustness (G.711 with PLC, random loss)
    r0_minus_is: float = R0_MINUS_IS_DEFAULT
    advantage_a: float = 0.0  # expectation factor; 0 for wired/VoIP
    frame_ms: float = 20.0  # packetisation delay added to the one-way delay

    def __post_init__(self) -> None:
        if not 0.0 <= self.codec_ie <= 95.0:
            raise ConfigError(f"codec_ie {self.codec_ie} outside 0..95")
        if not self.codec_bpl > 0.0:
            raise ConfigError(f"codec_bpl {self.codec_bpl} must be positive")
        if self.frame_ms < 0.0:
            raise ConfigError(f"frame_ms {self.frame_ms} must not be negative")


def effective_equipment_impairment(
    loss_percent: float, burst_ratio: float, params: EModelParams
) -> float:
    """``Ie_eff`` (G.107 eq. 7-29) for a loss rate in percent and a burst ratio (1 = random)."""
    ppl = min(max(loss_percent, 0.0), 100.0)
    burst = max(burst_ratio, 1e-3)
    ie = params.codec_ie
    return ie + (95.0 - ie) * ppl / (ppl / burst + params.codec_bpl)


def delay_impairment(one_way_ms: float) -> float:
    """``Id`` for a one-way mouth-to-ear delay in ms (default echo settings)."""
    ta = max(one_way_ms, 0.0)
    excess = max(ta - DELAY_KNEE_MS, 0.0)
    return 0.024 * ta + 0.11 * excess


def one_way_delay_ms(rtt_ms: float | None, jitter_ms: float, params: EModelParams) -> float:
    """Mouth-to-ear delay estimate: half the RTT + a jitter buffer of 2x jitter + one frame.

    ``rtt_ms`` is None when no RTCP round trip is known yet (then only jitter and framing count).
    """
    network_ms = 0.0 if rtt_ms is None else max(rtt_ms, 0.0) / 2.0
    return network_ms + 2.0 * max(jitter_ms, 0.0) + params.frame_ms


def r_factor(
    loss_percent: float,
    one_way_ms: float,
    burst_ratio: float = 1.0,
    params: EModelParams = EModelParams(),
) -> float:
    """Transmission rating factor R (about 0..100; 93.2 for a perfect G.711 call)."""
    return (
        params.r0_minus_is
        - delay_impairment(one_way_ms)
        - effective_equipment_impairment(loss_percent, burst_ratio, params)
        + params.advantage_a
    )


def mos_from_r(r: float) -> float:
    """G.107 Annex B: R -> estimated MOS (conversational quality), within 1..4.5."""
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return MOS_AT_R100
    # the polynomial dips just below 1 for R < 6.5; a rating never goes below "bad"
    return max(1.0, 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6)


def burst_ratio(loss_fraction: float, mean_burst_packets: float) -> float:
    """G.107 BurstR from the loss rate and the mean loss-burst length (2-state Markov model).

    With ``p = P(loss | received)`` and ``q = P(received | loss)``: ``Ppl = p/(p+q)``, mean burst
    ``1/q``, and ``BurstR = 1/(p+q) = (1 - Ppl) * mean_burst``; random loss gives 1. Losses more spread out
    than random (BurstR < 1) are counted as random: G.107 gives no benefit for them.
    """
    if loss_fraction <= 0.0 or mean_burst_packets <= 0.0:
        return 1.0
    return max((1.0 - min(loss_fraction, 0.999)) * mean_burst_packets, 1.0)


def estimate_mos(
    loss_percent: float,
    jitter_ms: float,
    rtt_ms: float | None = None,
    burst: float = 1.0,
    params: EModelParams = EModelParams(),
) -> float:
    """One call: network figures -> E-model MOS (1..4.5)."""
    delay = one_way_delay_ms(rtt_ms, jitter_ms, params)
    return mos_from_r(r_factor(loss_percent, delay, burst, params))
