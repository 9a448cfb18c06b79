"""Synthetic vibration signals of a rotating machine with 11 kinds of fault, for fault diagnosis.

What the generator models (one accelerometer on a bearing housing of a motor-gearbox set):

* **Shaft harmonics.** Every machine vibrates at its running speed ``fr`` (1x) and a few
  harmonics (2x, 3x) from residual imbalance and coupling; their amplitudes and phases are
  drawn per sample.
* **Imbalance** raises the 1x amplitude (a heavy spot is a once-per-revolution force).
  **Misalignment** raises 2x (and 3x): a misaligned coupling pulls twice per turn; on a
  radial sensor the axial component shows as extra 2x/3x. **Mechanical looseness**
  clips the response, giving many harmonics (up to 10x) and half-order sub-harmonics
  (0.5x, 1.5x, ...). **Oil whirl** is a sub-synchronous line at 0.42-0.48x.
* **Rolling-element bearing defects** (McFadden & Smith 1984; Randall & Antoni 2011):
  each time a ball passes a defect it strikes it, and the strike rings the housing's
  structural resonance ``f_res`` (~1-1.6 kHz) with an exponential decay. The strikes
  repeat at the defect frequency given by the bearing geometry (``n`` balls, ball
  diameter ``d``, pitch diameter ``D``, contact angle ``phi``)::

      FTF  = fr/2 * (1 - d/D cos phi)                 (cage)
      BPFO = n fr/2 * (1 - d/D cos phi)               (outer race)
      BPFI = n fr/2 * (1 + d/D cos phi)               (inner race)
      BSF  = D fr/(2d) * (1 - (d/D cos phi)^2)        (ball spin)

  An outer-race defect sits still in the load zone: strikes of constant strength at BPFO.
  An inner-race defect turns with the shaft through the load zone: strikes at BPFI
  amplitude-modulated at 1x. A ball defect strikes both races (2 x BSF) and travels with
  the cage: modulation at FTF. A cage defect modulates at FTF with a line at FTF itself.
  Strike strength grows with the severity and with the load; the time between strikes
  jitters by ~1 % (balls slip). Their signature is a line at the defect frequency in the
  *envelope* spectrum (what a vibration analyst looks at), sidebands in the raw one.
* **Gears.** The gear mesh frequency ``GMF = teeth x fr`` is present in every sample (low);
  tooth wear raises GMF, 2xGMF and their 1x sidebands; a broken tooth hits once per
  revolution, adding a 1x-periodic burst at GMF.
* **Electrical** (stator) faults vibrate at twice the line frequency (100 Hz for 50 Hz mains),
  independent of speed: the one fault whose line does not move with ``fr``.
* **Domain randomisation.** Speed, load, sensor gain, noise level, resonance frequency and
  all phases are drawn per sample from :class:`FaultDomain` ranges, so a held-out set drawn
  from other ranges tests whether a model learnt the physics or the training conditions.
* **Class imbalance.** Healthy machines are the most common (40 %); faults follow
  ``FAULT_SHARE`` (imbalance 10 % ... cage and broken tooth 2 %); severities 1..5 have
  probabilities proportional to ``2^-(s-1)``: severity 5 is 16x rarer than severity 1.

The 12 types (``FAULT_TYPES``): ``healthy`` (always severity 0) and 11 faults, each with
severity 1 (incipient, below the noise floor of a raw spectrum) to 5 (severe).

References:
    McFadden, Smith. Model for the vibration produced by a single point defect in a rolling
    element bearing. J. Sound Vib. 1984.
    Randall, Antoni. Rolling element bearing diagnostics - a tutorial. MSSP 2011.
    Tobin et al. Domain randomization for transferring deep neural networks from simulation
    to the real world. IROS 2017.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FAULT_TYPES = (
    "healthy", "imbalance", "misalignment", "looseness", "outer_race", "inner_race", "ball", "cage",
    "gear_wear", "broken_tooth", "oil_whirl", "electrical",
)
# Share of each type in the population, in percent (sums to 100): healthy machines dominate,
# common mechanical faults next, cage and broken-tooth faults rare.
FAULT_SHARE = (40, 10, 9, 7, 8, 6, 4, 2, 6, 2, 3, 3)
SEVERITIES = (1, 2, 3, 4, 5)
# Fault amplitude per severity, relative to the severe (5) one.
_SEVERITY_SCALE = np.array([0.0, 0.15, 0.3, 0.5, 0.75, 1.0])
LINE_HZ = 50.0


@dataclass(frozen=True)
class BearingGeometry:
    """A deep-groove ball bearing; the default is an SKF 6205 (the CWRU bearing data set's)."""

    balls: int = 9
    ball_diameter: float = 7.94  # mm
    pitch_diameter: float = 39.04  # mm
    contact_angle_deg: float = 0.0

    def frequencies(self, shaft_hz: np.ndarray | float) -> dict[str, np.ndarray]:
        """Defect frequencies (Hz) ``ftf, bpfo, bpfi, bsf`` at shaft speed ``shaft_hz``."""
        fr = np.asarray(shaft_hz, dtype=np.float64)
        ratio = self.ball_diameter / self.pitch_diameter * np.cos(np.radians(self.contact_angle_deg))
        return {
            "ftf": fr / 2 * (1 - ratio),
            "bpfo": self.balls * fr / 2 * (1 - ratio),
            "bpfi": self.balls * fr / 2 * (1 + ratio),
            "bsf": self.pitch_diameter * fr / (2 * self.ball_diameter) * (1 - ratio**2),
        }


@dataclass(frozen=True)
class FaultDomain:
    """Ranges the nuisance parameters are drawn from (uniform; gain log-uniform)."""

    speed_hz: tuple[float, float] = (15.0, 40.0)  # shaft speed, 900-2400 rpm
    load: tuple[float, float] = (0.3, 1.0)  # fraction of rated load; scales bearing strikes
    gain: tuple[float, float] = (0.5, 2.0)  # sensor sensitivity x mounting
    noise: tuple[float, float] = (0.05, 0.25)  # broadband noise std (before gain)
    resonance_hz: tuple[float, float] = (1000.0, 1600.0)  # housing resonance the strikes ring


@dataclass
class FaultSignals:
    """Signals and their labels; nuisance arrays let a caller split or stratify by condition."""

    signals: np.ndarray  # [N, L] float32, sensor units
    fault: np.ndarray  # [N] int64 index into FAULT_TYPES
    severity: np.ndarray  # [N] int64, 0 for healthy, 1..5 for faults
    speed_hz: np.ndarray  # [N]
    load: np.ndarray  # [N]
    gain: np.ndarray  # [N]
    noise: np.ndarray  # [N]
    sample_rate: float
    fault_names: tuple[str, ...] = field(default=FAULT_TYPES)


def make_faults(
    n: int, *, seed: int = 0, length: int = 1024, sample_rate: float = 4096.0,
    domain: FaultDomain | None = None, bearing: BearingGeometry | None = None, gear_teeth: int = 23,
    fault: int | None = None, severity: int | None = None,
) -> FaultSignals:
    """``n`` vibration signals of ``length`` samples at ``sample_rate`` Hz (see the module docstring).

    Args:
        n: number of signals.
        seed: everything (labels, nuisances, noise) is a function of it.
        length: samples per signal (1024 at 4096 Hz = 0.25 s, 4-10 shaft turns).
        sample_rate: Hz; must exceed twice the highest resonance.
        domain: nuisance ranges; draw a held-out set from other ranges to test transfer.
        bearing: geometry behind the defect frequencies.
        gear_teeth: teeth of the pinion on the shaft (GMF = teeth x speed).
        fault, severity: force every sample to this type (index into ``FAULT_TYPES``)
            and severity instead of drawing them (for tests and plots).

    Returns:
        :class:`FaultSignals`.
    """
    domain, bearing = domain or FaultDomain(), bearing or BearingGeometry()
    if domain.resonance_hz[1] >= sample_rate / 2:
        raise ValueError(f"resonance up to {domain.resonance_hz[1]} Hz needs sample_rate > {2 * domain.resonance_hz[1]}")
    rng = np.random.default_rng(seed)
    share = np.asarray(FAULT_SHARE, dtype=np.float64) / sum(FAULT_SHARE)
    kinds = rng.choice(len(FAULT_TYPES), size=n, p=share) if fault is None else np.full(n, fault)
    sev_p = 0.5 ** np.arange(len(SEVERITIES))
    sev = rng.choice(SEVERITIES, size=n, p=sev_p / sev_p.sum()) if severity is None else np.full(n, severity)
    sev = np.where(kinds == 0, 0, sev).astype(np.int64)
    speed = rng.uniform(*domain.speed_hz, size=n)
    load = rng.uniform(*domain.load, size=n)
    gain = np.exp(rng.uniform(*np.log(domain.gain), size=n))
    noise = rng.uniform(*domain.noise, size=n)
    res = rng.uniform(*domain.resonance_hz, size=n)
    t = np.arange(length) / sample_rate
    x = np.empty((n, length), dtype=np.float64)
    for i in range(n):  # per-sample physics differs by type; 6000 signals take about 2 s
        x[i] = _signal(rng, t, int(kinds[i]), _SEVERITY_SCALE[sev[i]], speed[i], load[i], res[i], bearing,
                       gear_teeth, sample_rate)
        x[i] += noise[i] * rng.standard_normal(length)
    x *= gain[:, None]
    return FaultSignals(x.astype(np.float32), kinds.astype(np.int64), sev, speed, load, gain, noise, sample_rate)


def _harmonic(rng: np.random.Generator, t: np.ndarray, freq: float, amp: float) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))


def _strikes(
    rng: np.random.Generator, t: np.ndarray, rate_hz: float, res_hz: float, sample_rate: float,
    modulation: np.ndarray | None = None,
) -> np.ndarray:
    """Impulses at ``rate_hz`` (1 % jitter: ball slip), each ringing a resonance at ``res_hz``."""
    duration = t[-1] + 1 / sample_rate
    times = rng.uniform(0, 1 / rate_hz) + np.arange(int(duration * rate_hz) + 1) / rate_hz
    times = times + rng.normal(0, 0.01 / rate_hz, size=times.shape)
    impulses = np.zeros_like(t)
    pos = np.round(times * sample_rate).astype(np.int64)
    pos = pos[(pos >= 0) & (pos < len(t))]
    impulses[pos] = 1.0 if modulation is None else modulation[pos]
    decay = 1 / (0.0015 + 0.001 * rng.random())  # ~1.5-2.5 ms ringing of a stiff housing
    ring_t = t[: int(0.02 * sample_rate)]
    ringing = np.exp(-decay * ring_t) * np.sin(2 * np.pi * res_hz * ring_t)
    return np.convolve(impulses, ringing)[: len(t)]


def _signal(
    rng: np.random.Generator, t: np.ndarray, kind: int, amp: float, fr: float, load: float, res: float,
    bearing: BearingGeometry, teeth: int, sample_rate: float,
) -> np.ndarray:
    # Every machine: residual imbalance (1x), coupling (2x, 3x), a quiet gear mesh.
    x = _harmonic(rng, t, fr, rng.uniform(0.2, 0.4)) + _harmonic(rng, t, 2 * fr, rng.uniform(0.05, 0.15))
    x += _harmonic(rng, t, 3 * fr, rng.uniform(0.02, 0.06)) + _harmonic(rng, t, teeth * fr, rng.uniform(0.05, 0.1))
    name = FAULT_TYPES[kind]
    if name == "healthy":
        return x
    f = {k: float(v) for k, v in bearing.frequencies(fr).items()}
    strike = 1.2 * amp * (0.5 + 0.5 * load)  # strikes hit harder under load
    if name == "imbalance":
        x += _harmonic(rng, t, fr, 1.5 * amp)
    elif name == "misalignment":
        x += _harmonic(rng, t, fr, 0.3 * amp) + _harmonic(rng, t, 2 * fr, 1.0 * amp)
        x += _harmonic(rng, t, 3 * fr, 0.4 * amp)
    elif name == "looseness":
        for h in range(1, 11):  # a clipped response: a comb of harmonics, slowly decaying
            x += _harmonic(rng, t, h * fr, 0.5 * amp / h**0.5)
        for h in (0.5, 1.5, 2.5):
            x += _harmonic(rng, t, h * fr, 0.3 * amp)
    elif name == "outer_race":
        x += _strikes(rng, t, f["bpfo"], res, sample_rate) * strike
    elif name == "inner_race":
        mod = 1 + 0.8 * np.cos(2 * np.pi * fr * t + rng.uniform(0, 2 * np.pi))  # through the load zone each turn
        x += _strikes(rng, t, f["bpfi"], res, sample_rate, mod / 1.8) * strike
    elif name == "ball":
        mod = 1 + 0.8 * np.cos(2 * np.pi * f["ftf"] * t + rng.uniform(0, 2 * np.pi))  # travels with the cage
        x += _strikes(rng, t, 2 * f["bsf"], res, sample_rate, mod / 1.8) * strike
    elif name == "cage":
        x += _harmonic(rng, t, f["ftf"], 0.6 * amp) + _harmonic(rng, t, fr - f["ftf"], 0.4 * amp)
        x *= 1 + 0.5 * amp * np.cos(2 * np.pi * f["ftf"] * t)
    elif name == "gear_wear":
        gmf = teeth * fr
        for centre, a in ((gmf, 0.8), (2 * gmf, 0.4)):
            x += _harmonic(rng, t, centre, a * amp)
            x += _harmonic(rng, t, centre - fr, 0.3 * a * amp) + _harmonic(rng, t, centre + fr, 0.3 * a * amp)
    elif name == "broken_tooth":
        # once per turn the broken tooth meshes: a short burst at the mesh frequency
        phase = (t * fr + rng.random()) % 1.0
        burst = np.exp(-((phase - 0.5) / 0.03) ** 2)
        x += 1.5 * amp * burst * np.sin(2 * np.pi * teeth * fr * t)
    elif name == "oil_whirl":
        x += _harmonic(rng, t, rng.uniform(0.42, 0.48) * fr, 1.0 * amp)
    elif name == "electrical":
        x += _harmonic(rng, t, 2 * LINE_HZ, 0.8 * amp)
    return x
