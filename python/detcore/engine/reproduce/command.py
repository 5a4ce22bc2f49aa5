"""``detcore reproduce NAME|all [--preset quick|small|paper] [--data SPEC] -o DIR``."""

from __future__ import annotations

import json
import os
import time

from ..cli_support import log
from .base import ORDER, PRESET_HELP, ReproduceError, available, check_preset, get
from .report import command_line, write_results, write_summary


def list_experiments() -> int:
    for name in available():
        experiment = get(name)
        print(f"{name:16s} {experiment.title} ({experiment.paper})")
    missing = [n for n in ORDER if n not in available()]
    if missing:
        print(f"(not in this installation: {', '.join(missing)})")
    print()
    for preset, text in PRESET_HELP.items():
        print(f"--preset {preset:6s} {text}")
    return 0


def run(args) -> int:
    if args.list:
        return list_experiments()
    if not args.name:
        raise ReproduceError("name an experiment (detcore reproduce --list) or 'all'")
    check_preset(args.preset)
    names = available() if args.name == "all" else [args.name]
    experiments = [get(name) for name in names]
    plans = {e.name: e.plan(args.preset, args.data, args.val_data) for e in experiments}
    for plan in plans.values():
        plan.setdefault("device", args.device)
        plan.setdefault("weights", args.weights)
    if args.dry_run:
        print(json.dumps(plans if args.name == "all" else plans[args.name], indent=2, sort_keys=True))
        return 0
    if not args.output:
        raise ReproduceError("-o/--output is required (or --dry-run)")
    failed = []
    for experiment in experiments:
        out_dir = os.path.join(args.output, experiment.name)
        os.makedirs(out_dir, exist_ok=True)
        command = command_line(experiment.name, args.preset, args.data, args.val_data)
        log(f"reproduce {experiment.name}: {experiment.title} (preset {args.preset})")
        t0 = time.perf_counter()
        try:
            outcome = experiment.run(plans[experiment.name], out_dir, log)
        except ReproduceError as e:
            if args.name != "all":
                raise
            log(f"reproduce {experiment.name}: failed: {e}")
            failed.append(experiment.name)
            continue
        write_results(out_dir, experiment, args.preset, plans[experiment.name], command, outcome,
                      time.perf_counter() - t0)
        log(f"reproduce {experiment.name}: wrote {os.path.join(out_dir, 'results.md')}")
    if args.name == "all":
        log(f"reproduce: wrote {write_summary(args.output, names, args.preset)}")
    if failed:
        raise ReproduceError(f"{len(failed)} experiment(s) failed: {', '.join(failed)} (their logs are above)")
    return 0
