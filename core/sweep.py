"""Sweeps: one factor over a list of values, each value over N seeds, against the seed-noise band.

A sweep starts from the pair's A. For each of N seeds (A's seed, then the next N-1) it
trains A with that seed, and A with that seed and the factor at each value (from that
seed's initial weights when the pair's B starts from A's). The gap of a value at a seed
is how far that run ends from A at the same seed; the seed-noise band is how far A's runs
with different seeds end from each other (every pair of seeds). A value whose median gap
lies above the band's top differs from A by more than a change of seed does.

The runs go through the same batch as every analysis (core.batch): each is trained once,
in a fresh worker, and kept in the run cache; the Attribution page's noise floor is the
seeds-only plan (`core.analysis.noise_plan`) that this one extends. No Streamlit, no
framework here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from core import analysis
from core.batch import Planned
from core.config import ConfigError, PairConfig
from core.factors import FACTORS, Choice, Number, check_run, factor, format_value

MIN_SEEDS, MAX_SEEDS = 2, 50  # two seeds make the smallest band (one gap)
MAX_VALUES = 40
MAX_RUNS = 1000  # seeds x (values + 1)


@dataclass(frozen=True)
class Sweep:
    path: str | None  # the factor swept; None: seeds only (the band alone)
    values: tuple = ()  # the factor's values, in the order they are drawn
    seeds: int = 5  # N: seeds per value

    @property
    def runs(self) -> int:
        return self.seeds * (len(self.values) + 1)


def describe(sweep: Sweep) -> str:
    """What a sweep plans, in words ("5 seeds x (8 values + A)")."""
    n = len(sweep.values)
    return f"{sweep.seeds} seeds x ({n} value{'s' * (n != 1)} + A)"


def sweepable(engine_name: str) -> list[str]:
    """The factors a sweep of a run on this engine can take: one value per run, used by the engine, not the seed."""
    return [f.path for f in FACTORS if isinstance(f.allowed, (Number, Choice)) and f.path != "seeding.seed"
            and engine_name in f.engines]


def make_sweep(pair: PairConfig, path: str | None, values, seeds: int) -> Sweep:
    """A validated sweep of `pair`'s A; every error names the field and what is allowed."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not MIN_SEEDS <= seeds <= MAX_SEEDS:
        raise ConfigError(f"seeds: {seeds!r} is out of range; allowed {MIN_SEEDS} to {MAX_SEEDS} seeds per value")
    if path is None:
        return Sweep(None, (), seeds)
    f = factor(path)  # an unknown path is a ConfigError naming the factors
    if path == "seeding.seed":
        raise ConfigError("factor: seeding.seed is what every value is repeated over; sweep seeds only instead")
    if not isinstance(f.allowed, (Number, Choice)):
        raise ConfigError(f"factor: {path} takes several numbers at once; sweep a factor with one value per run")
    if pair.a.engine.name not in f.engines:
        raise ConfigError(f"factor: the {pair.a.engine.name} engine does not use {path}")
    values = tuple(dict.fromkeys(f.allowed.check(v, f"values ({path})") for v in values))
    if not 1 <= len(values) <= MAX_VALUES:
        raise ConfigError(f"values: give 1 to {MAX_VALUES} values of {path}, not {len(values)}")
    sweep = Sweep(path, values, seeds)
    if sweep.runs > MAX_RUNS:
        raise ConfigError(f"values: {seeds} seeds x ({len(values)} values + A) is {sweep.runs} runs; at most "
                          f"{MAX_RUNS}")
    for value in values:  # each swept run must be one the app accepts (e.g. a CNN on the raw loop is not)
        try:
            check_run(pair.a.with_value(path, value))
        except ConfigError as e:
            raise ConfigError(f"values ({path} = {format_value(path, value)}): {e}") from None
    return sweep


def parse_values(path: str, text: str) -> list:
    """Comma-separated values as typed ("1e-3, 1e-4", "relu, tanh", "on, off"); make_sweep checks them."""
    allowed = factor(path).allowed
    out = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        word = token.lower()
        if isinstance(allowed, Choice) and all(isinstance(o, bool) for o in allowed.options) and \
                word in ("on", "off", "true", "false"):
            value = word in ("on", "true")
        else:
            try:
                value = json.loads(token)
            except ValueError:
                value = token
        out.append(value)
    return out


def value_range(path: str, start: float, stop: float, count: int) -> list:
    """`count` values from start to stop: evenly spaced, on a log scale for log-scale factors (learning rate,
    epsilon), whole numbers for integer ones."""
    allowed = factor(path).allowed
    if not isinstance(allowed, Number):
        raise ConfigError(f"factor: {path} is not a number; give its values as a list")
    if not 1 <= count <= MAX_VALUES:
        raise ConfigError(f"values: a range of 1 to {MAX_VALUES} values, not {count}")
    for end in (start, stop):
        allowed.check(end, f"values ({path})")
    if allowed.log and min(start, stop) <= 0:
        raise ConfigError(f"values ({path}): a log-scale range needs positive ends")
    points = np.geomspace(start, stop, count) if allowed.log else np.linspace(start, stop, count)
    if allowed.integer:
        return list(dict.fromkeys(int(round(p)) for p in points))
    return [float(f"{p:.6g}") for p in points]  # 1e-07, not 1.0000000000000004e-07


def seed_name(pair: PairConfig, i: int) -> str:
    """The run of A with the i-th seed, named as core.analysis.noise_plan names it."""
    return "A" if i == 0 else f"A seed {pair.a.seeding.seed + i}"


def run_name(pair: PairConfig, sweep: Sweep, value, i: int) -> str:
    return f"{sweep.path} = {format_value(sweep.path, value)}, seed {pair.a.seeding.seed + i}"


def sweep_plan(pair: PairConfig, sweep: Sweep) -> dict[str, Planned]:
    """A with each seed (the noise-floor plan), then per seed each value, named by value and seed.

    A value equal to A's own is A's run at that seed (its gap is 0 by definition, and nothing is trained).
    """
    plan = analysis.noise_plan(pair, sweep.seeds - 1)
    for i in range(sweep.seeds):
        base = seed_name(pair, i)
        for value in sweep.values:
            run = plan[base].run.with_value(sweep.path, value)
            if run != plan[base].run:
                plan[run_name(pair, sweep, value, i)] = Planned(run, base if pair.b_starts_from_a_init else None)
    return plan


def _spread(gaps: list[float]) -> dict:
    if not gaps:
        return {"median": None, "low": None, "high": None, "n": 0}
    return {"median": float(np.median(gaps)), "low": float(np.min(gaps)), "high": float(np.max(gaps)),
            "n": len(gaps)}


def sweep_result(pair: PairConfig, sweep: Sweep, outcomes: dict[str, dict]) -> dict:
    """The gap per value and seed, the band, and which values leave it.

    Runs that failed or were stopped before they ended are listed in `missing` and left out, so a sweep
    stopped halfway still shows what finished; so are runs that diverged (`diverged`: no finite gap).
    """
    done = {name: o for name, o in outcomes.items() if o.get("type") == "result"}
    missing = sorted(name for name in outcomes if name not in done)
    gone = analysis.diverged(done)
    finite = {name: o for name, o in done.items() if name not in gone}
    seeds = [seed_name(pair, i) for i in range(sweep.seeds)]
    noise = [{"seeds": f"{x} / {y}", "prediction": g["prediction"], "weights": g["weights"]}
             for x, y in combinations([s for s in seeds if s in finite], 2)
             for g in [analysis.gap(finite[x], finite[y])]]
    band = {measure: _spread([n[measure] for n in noise if n[measure] is not None])
            for measure in ("prediction", "weights")}
    rows = []
    for value in sweep.values:
        for i, base in enumerate(seeds):
            name = run_name(pair, sweep, value, i)
            if name not in outcomes:  # the value is A's own: A's run at this seed
                name = base
            if base in finite and name in finite:
                g = analysis.gap(finite[base], finite[name]) if name != base else {"prediction": 0.0, "weights": 0.0}
                rows.append({"value": value, "seed": pair.a.seeding.seed + i, "prediction": g["prediction"],
                             "weights": g["weights"]})
    values = []
    for value in sweep.values:
        per_seed = [r for r in rows if r["value"] == value]
        stats = {m: _spread([r[m] for r in per_seed if r[m] is not None]) for m in ("prediction", "weights")}
        top = band["prediction"]["high"]
        median = stats["prediction"]["median"]
        values.append({"value": value, "label": format_value(sweep.path, value), **{
            f"{m}_{k}": stats[m][k] for m in ("prediction", "weights") for k in ("median", "low", "high")},
            "seeds": stats["prediction"]["n"],
            "outside_band": None if median is None or top is None else median > top})
    return {"path": sweep.path, "rows": rows, "noise": noise, "band": band, "values": values,
            "outside": [v["label"] for v in values if v["outside_band"]], "missing": missing, "diverged": gone}


def verdict(sweep: Sweep, result: dict) -> str:
    """One sentence: where the gap leaves the seed-noise band, in the measured numbers."""
    band = result["band"]["prediction"]
    if band["n"] == 0:
        return "No two seeds of A finished with a finite result, so there is no seed-noise band to compare with."
    noise = (f"seed noise (A against A with another seed) spans {band['low']:.3g} to {band['high']:.3g}, "
             f"median {band['median']:.3g}, over {band['n']} pair{'s' * (band['n'] != 1)} of seeds")
    if sweep.path is None:
        return noise[0].upper() + noise[1:] + "."
    label = factor(sweep.path).label
    outside = result["outside"]
    # A value none of whose runs finished (a sweep stopped early, a run that failed) has no gap: say so
    # rather than count it as within the noise.
    unmeasured = [v["label"] for v in result["values"] if v["outside_band"] is None]
    not_run = f"; no finished run to compare at {label} = {', '.join(unmeasured)}" if unmeasured else ""
    if len(unmeasured) == len(result["values"]):
        return f"No value of {label} has a finished run to compare with the seed noise; {noise}."
    if not outside:
        every = f"Every value of {label}" + (" with a finished run" if unmeasured else "")
        return f"{every} stays within the seed noise: its median gap is at most the band's top; {noise}{not_run}."
    first = next(v for v in result["values"] if v["outside_band"])
    ratio = first["prediction_median"] / band["high"] if band["high"] else math.inf
    return (f"{label} = {', '.join(outside)} move{'s' if len(outside) == 1 else ''} the predictions further than a "
            f"change of seed does (at {first['label']} the median gap is {first['prediction_median']:.3g}, "
            f"{ratio:.3g}x the band's top); {noise}{not_run}.")


def to_csv(result: dict) -> str:
    """Every gap the sweep measured, one per row: each value at each seed, then each pair of seeds (the band)."""
    import pandas as pd

    rows = [{"kind": "value", "factor": result["path"], "value": r["value"], "seeds": str(r["seed"]),
             "prediction_rms_gap": r["prediction"], "weights_l2_gap": r["weights"]} for r in result["rows"]]
    rows += [{"kind": "seed noise", "factor": None, "value": None, "seeds": n["seeds"],
              "prediction_rms_gap": n["prediction"], "weights_l2_gap": n["weights"]} for n in result["noise"]]
    return pd.DataFrame(rows, columns=["kind", "factor", "value", "seeds", "prediction_rms_gap",
                                       "weights_l2_gap"]).to_csv(index=False)
