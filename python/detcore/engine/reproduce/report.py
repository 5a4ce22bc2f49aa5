"""The files of a reproduction: ``NAME/results.md``, ``NAME/results.json`` and the
summary ``REPRODUCTION.md``."""

from __future__ import annotations

import datetime
import json
import os
from typing import List, Optional

from .base import PRESET_HELP, Experiment, Outcome, Row

RESULTS_MD = "results.md"
RESULTS_JSON = "results.json"
SUMMARY_MD = "REPRODUCTION.md"


def _number(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.1f}"
    text = f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{text} {unit}".rstrip() if unit and unit != "%" else text


def results_table(outcome: Outcome) -> str:
    lines = ["| setting | metric | published | detcore |", "|---|---|---:|---:|"]
    for row in outcome.rows:
        metric = f"{row.metric} (%)" if row.unit == "%" else row.metric
        lines.append(f"| {row.setting} | {metric} | {_number(row.published, row.unit)} | "
                     f"{_number(row.measured, row.unit)} |")
    return "\n".join(lines)


def command_line(name: str, preset: str, data: Optional[str], val_data: Optional[str]) -> str:
    parts = ["detcore reproduce", name, "--preset", preset]
    if data:
        parts += ["--data", data]
    if val_data:
        parts += ["--val-data", val_data]
    return " ".join(parts + ["-o", "DIR"])


def results_markdown(experiment: Experiment, preset: str, command: str, outcome: Outcome, seconds: float,
                     heading: str = "#") -> str:
    parts = [f"{heading} {experiment.name}: {experiment.title}", "",
             f"{experiment.paper}. Published: {experiment.claim}", "",
             f"Preset `{preset}` ({PRESET_HELP[preset]}); `{command}`; {seconds / 60:.1f} min.", "",
             results_table(outcome), "",
             f"- Published setting: {outcome.published_setting}",
             f"- Measured setting: {outcome.measured_setting}", "",
             f"**Verdict.** {outcome.verdict}", ""]
    parts += [f"![{os.path.splitext(os.path.basename(p))[0]}]({p})\n" for p in outcome.plots]
    return "\n".join(parts)


def write_results(out_dir: str, experiment: Experiment, preset: str, plan: dict, command: str, outcome: Outcome,
                  seconds: float) -> None:
    from ..cli_support import write_json
    from detcore import __version__

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, RESULTS_MD), "w") as f:
        f.write(results_markdown(experiment, preset, command, outcome, seconds))
    write_json(os.path.join(out_dir, RESULTS_JSON), {
        "name": experiment.name, "title": experiment.title, "paper": experiment.paper, "claim": experiment.claim,
        "preset": preset, "command": command, "plan": plan, "seconds": seconds, "detcore": __version__,
        "date": datetime.date.today().isoformat(), **outcome.to_dict()})


def write_summary(root: str, names: List[str], preset: str) -> str:
    """``REPRODUCTION.md`` from the ``results.json`` of each experiment run under ``root``."""
    from . import get

    rows, sections = [], []
    for name in names:
        path = os.path.join(root, name, RESULTS_JSON)
        if not os.path.exists(path):
            rows.append(f"| {name} | not run | - | - |")
            continue
        with open(path) as f:
            result = json.load(f)
        outcome = Outcome(rows=[Row(**r) for r in result["rows"]], published_setting=result["published_setting"],
                          measured_setting=result["measured_setting"], verdict=result["verdict"],
                          plots=[f"{name}/{p}" for p in result["plots"]], details=result["details"])
        rows.append(f"| {name} | {result['title']} | {result['preset']} | {result['seconds'] / 60:.1f} |")
        sections.append(results_markdown(get(name), result["preset"], result["command"], outcome,
                                         result["seconds"], heading="##"))
    text = "\n".join([f"# detcore reproduce: the line's experiments (preset {preset})", "",
                      "| experiment | what | preset | minutes |", "|---|---|---|---:|", *rows, "", *sections])
    path = os.path.join(root, SUMMARY_MD)
    with open(path, "w") as f:
        f.write(text)
    return path
