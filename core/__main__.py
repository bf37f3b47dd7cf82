"""Command line: `python -m core presets`, `run ... --out DIR`, `sweep ... --out DIR` and `script ...`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core.config import ConfigError
from core.export import SCRIPT_NAME, standalone_script
from core.factors import parse_pair, parse_run, make_pair
from core.presets import PRESETS, preset
from core.ray_executor import RAY_ENV


def _load_pair(args):
    if args.preset:
        pair = preset(args.preset).pair()
    else:
        try:
            raw = json.loads(Path(args.pair_json).read_text())
        except OSError as e:
            raise ConfigError(f"cannot read {args.pair_json}: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{args.pair_json} is not valid JSON: {e}") from None
        pair = parse_pair(raw)
    if args.epochs is not None:
        a = parse_run({"training": {"epochs": args.epochs}}, pair.a)
        pair = make_pair(pair.data, a, dict(pair.b_differs), pair.b_starts_from_a_init, pair.same_process)
    return pair


def _number(value, spec: str) -> str:
    return "none" if value is None else format(value, spec)


def summary_lines(result) -> list[str]:
    s = result.summary
    lines = []
    for m in ("a", "b"):
        run = s[m]
        last = run["history"][-1] if run["history"] else None
        status = run["status"] + (f" ({run['message']})" if run["message"] else "")
        scores = f"loss {last['loss']:.6g}, test loss {last['test_loss']:.6g}, test metric {last['test_metric']:.4g}" \
            if last else "no epochs"
        lines.append(f"{m.upper()}: {status}; {len(run['history'])} epochs; {scores}")
    c = s["compare"]
    if c:
        first = c["first_divergent_epoch"]
        lines.append(f"weights bitwise equal: {c['weights_bitwise_equal']}; first divergent epoch: "
                     f"{'never' if first is None else first}")
        lines.append(f"prediction max |A-B|: {_number(c['prediction_max_abs_delta'], '.6g')}; "
                     f"class disagreement rate: {_number(c['disagreement_rate'], '.4g')} "
                     f"(over the {c['compared_samples']} test samples both predict finitely)")
    if d := s.get("diagnosis"):
        lines += [f"why: {d['name']}. {d['sentence']}", *(f"  {line}" for line in d["evidence"])]
    lines.append("served from cache" if result.cached else "trained now")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description="Divergence Lab: train an A/B pair.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("presets", help="print one preset name per line")
    run = sub.add_parser("run", help="train a pair and write result.json and arrays.npz")
    script = sub.add_parser("script", help="write the standalone script that trains the pair (the Reproduce page's)")
    sweep = sub.add_parser("sweep", help="one factor of A over several values, each over several seeds, against "
                                         "the seed-noise band; writes sweep.csv and sweep.json")
    for command in (run, script, sweep):
        command.add_argument("pair_json", nargs="?", help="a pair config JSON file")
        command.add_argument("--preset", choices=sorted(PRESETS), metavar="NAME")
        command.add_argument("--epochs", type=int)
    run.add_argument("--out", required=True, help="output directory")
    run.add_argument("--no-cache", action="store_true", help="train even if the result is cached")
    for command in (run, sweep):
        command.add_argument("--ray", metavar="ADDRESS", help=f"run on Ray: auto, ray://host:10001 or local (default: "
                                                              f"${RAY_ENV}, else this machine's worker pool)")
    script.add_argument("--out", default=SCRIPT_NAME, help=f"the script's file (default: {SCRIPT_NAME})")
    sweep.add_argument("--factor", help="the factor path to sweep, e.g. optimizer.epsilon (none: seeds only)")
    values = sweep.add_mutually_exclusive_group()
    values.add_argument("--values", help="comma-separated values, e.g. 1e-3,1e-5,1e-7")
    values.add_argument("--range", help="START:STOP:COUNT, log-spaced for log-scale factors, e.g. 1e-3:1e-10:8")
    sweep.add_argument("--seeds", type=int, default=5, help="seeds per value (default 5)")
    sweep.add_argument("--out", required=True, help="output directory")
    sweep.add_argument("--no-cache", action="store_true", help="train even the runs that are cached")
    args = parser.parse_args(argv)

    if args.command == "presets":
        print("\n".join(PRESETS))
        return 0
    if bool(args.preset) == bool(args.pair_json):
        print("error: give either PAIR.json or --preset NAME", file=sys.stderr)
        return 2
    if args.command == "script":
        try:
            Path(args.out).write_text(standalone_script(_load_pair(args)))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {args.out}: python {args.out} trains A and B and compares them")
        return 0
    if getattr(args, "ray", None):
        os.environ[RAY_ENV] = args.ray  # core.batch reads it for every batch of this process
    if args.command == "sweep":
        return _sweep(args)
    try:
        pair = _load_pair(args)
        from core.pair import run_pair
        from core.pool import WorkerPool

        pool = WorkerPool(warm=0)
        try:
            result = run_pair(pair, pool, cache=not args.no_cache)
        finally:
            pool.shutdown()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result.save(args.out)
    print("\n".join(summary_lines(result)))
    if not result.complete:
        reasons = "; ".join(f"{m.upper()}: {result.summary[m]['message']}" for m in ("a", "b")
                            if result.summary[m]["status"] not in ("ok", "diverged"))
        print(f"error: {reasons}", file=sys.stderr)
        return 1
    return 0


def _sweep(args) -> int:
    from core import analysis, sweep

    try:
        pair = _load_pair(args)
        if args.factor and not (args.values or args.range):
            raise ConfigError("values: give --values V1,V2,... or --range START:STOP:COUNT with --factor")
        if (args.values or args.range) and not args.factor:
            raise ConfigError("factor: --values and --range need --factor PATH")
        values = []
        if args.values:
            values = sweep.parse_values(args.factor, args.values)
        elif args.range:
            try:
                start, stop, count = args.range.split(":")
                start, stop, count = float(start), float(stop), int(count)
            except ValueError:
                raise ConfigError(f"range: {args.range!r} is not START:STOP:COUNT") from None
            values = sweep.value_range(args.factor, start, stop, count)
        plan_of = sweep.make_sweep(pair, args.factor, values, args.seeds)
        plan = sweep.sweep_plan(pair, plan_of)
        print(f"{len(plan)} runs: {sweep.describe(plan_of)}", flush=True)
        from core.pool import WorkerPool

        pool = WorkerPool(warm=0)
        try:
            outcomes = analysis.execute(pair, plan, pool, cache=not args.no_cache)
        finally:
            pool.shutdown()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = sweep.sweep_result(pair, plan_of, outcomes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.csv").write_text(sweep.to_csv(result))
    (out / "sweep.json").write_text(json.dumps(result, indent=1, default=str))
    for v in result["values"]:
        print(f"{args.factor} = {v['label']}: median gap {_number(v['prediction_median'], '.3g')} "
              f"({_number(v['prediction_low'], '.3g')} to {_number(v['prediction_high'], '.3g')} over {v['seeds']} "
              f"seeds){'  outside the seed-noise band' if v['outside_band'] else ''}")
    print(sweep.verdict(plan_of, result))
    for name in result["missing"]:
        print(f"error: {name}: {outcomes[name].get('message', 'did not finish')}", file=sys.stderr)
    return 1 if result["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
