"""The fault-signal generator: the physics shows where it should, seeds decide everything,
labels follow the stated imbalance, and ``builtin:faults`` loads as a signal table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainground.data.builtin import load_builtin
from trainground.data.faults import (
    FAULT_SHARE,
    FAULT_TYPES,
    BearingGeometry,
    FaultDomain,
    make_faults,
)

signal = pytest.importorskip("scipy.signal")


def _envelope_peak(x: np.ndarray, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Envelope spectrum (what an analyst reads for bearings): band-pass around the housing
    resonance, Hilbert envelope, FFT."""
    sos = signal.butter(4, [800, 1900], btype="band", fs=sample_rate, output="sos")
    env = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x)))
    env = env - env.mean()
    return np.fft.rfftfreq(len(x), 1 / sample_rate), np.abs(np.fft.rfft(env * np.hanning(len(env))))


def test_cwru_bearing_defect_frequencies() -> None:
    # The 6205 bearing's published multiples of shaft speed (CWRU bearing data centre).
    f = BearingGeometry().frequencies(1.0)
    assert f["bpfo"] == pytest.approx(3.5848, abs=2e-3)
    assert f["bpfi"] == pytest.approx(5.4152, abs=2e-3)
    assert f["bsf"] == pytest.approx(2.357, abs=3e-3)
    assert f["ftf"] == pytest.approx(0.3983, abs=1e-3)


def test_severe_outer_race_fault_peaks_at_bpfo_in_the_envelope_spectrum() -> None:
    data = make_faults(20, seed=1, fault=FAULT_TYPES.index("outer_race"), severity=5)
    healthy = make_faults(20, seed=1, fault=0)
    hits, contrast = 0, []
    for i in range(20):
        freqs, spec = _envelope_peak(data.signals[i].astype(np.float64), data.sample_rate)
        bpfo = float(BearingGeometry().frequencies(data.speed_hz[i])["bpfo"])
        band = (freqs > 10) & (freqs < 400)
        hits += abs(freqs[band][np.argmax(spec[band])] - bpfo) < 6  # FFT bins are 4 Hz wide
        near = np.abs(freqs - bpfo) < 6
        freqs_h, spec_h = _envelope_peak(healthy.signals[i].astype(np.float64), healthy.sample_rate)
        bpfo_h = float(BearingGeometry().frequencies(healthy.speed_hz[i])["bpfo"])
        near_h = np.abs(freqs_h - bpfo_h) < 6
        contrast.append((spec[near].max() / np.median(spec[band]), spec_h[near_h].max() / np.median(spec_h[band])))
    assert hits >= 18
    faulty, clean = np.median(np.array(contrast), axis=0)
    assert faulty > 3 * clean


def test_imbalance_raises_the_1x_line_with_severity() -> None:
    def line_1x(severity: int) -> float:
        data = make_faults(30, seed=2, fault=FAULT_TYPES.index("imbalance"), severity=severity)
        x = data.signals / data.gain[:, None]
        spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[1]), axis=1))
        freqs = np.fft.rfftfreq(x.shape[1], 1 / data.sample_rate)
        return float(np.median([spec[i, np.abs(freqs - data.speed_hz[i]) < 6].max() for i in range(len(x))]))

    assert line_1x(1) < line_1x(3) < line_1x(5)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = make_faults(50, seed=3), make_faults(50, seed=3), make_faults(50, seed=4)
    assert np.array_equal(a.signals, b.signals) and np.array_equal(a.fault, b.fault)
    assert np.array_equal(a.severity, b.severity) and np.array_equal(a.speed_hz, b.speed_hz)
    assert not np.array_equal(a.signals, c.signals)
    assert a.signals.dtype == np.float32 and a.signals.shape == (50, 1024)


def test_labels_follow_the_stated_imbalance() -> None:
    n = 4000
    data = make_faults(n, seed=5, length=64, domain=FaultDomain(resonance_hz=(10.0, 20.0)), sample_rate=256.0)
    share = np.asarray(FAULT_SHARE) / 100
    counts = np.bincount(data.fault, minlength=len(FAULT_TYPES))
    # within 4 binomial standard deviations of the stated share, for every type
    assert np.all(np.abs(counts - n * share) <= 4 * np.sqrt(n * share * (1 - share)))
    assert np.all(data.severity[data.fault == 0] == 0)
    sev = np.bincount(data.severity[data.fault > 0], minlength=6)[1:]
    assert np.all(np.diff(sev) < 0)  # each severity rarer than the one below
    assert sev[0] > 8 * sev[4]  # 16x in expectation


def test_domain_ranges_are_respected() -> None:
    held_out = FaultDomain(speed_hz=(45.0, 55.0), gain=(2.5, 4.0))
    data = make_faults(100, seed=6, domain=held_out)
    assert data.speed_hz.min() >= 45 and data.speed_hz.max() <= 55
    assert data.gain.min() >= 2.5 and data.gain.max() <= 4.0


def test_builtin_faults_is_a_signal_table_with_the_fault_type_as_target() -> None:
    ds = load_builtin("builtin:faults")
    assert ds.kind == "signal" and ds.features.shape == (6000, 1024) and ds.features.dtype == torch.float32
    assert set(ds.encoder.classes) == set(FAULT_TYPES)
    assert "severity" not in ds.schema.columns  # another task's label, never a feature
