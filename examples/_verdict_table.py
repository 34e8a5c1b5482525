"""The verdict's table (examples/verdict.py), from the finished runs' summaries and validation logs; nothing is
retrained.

Per arm, mean +/- sd over its finished seeds: iterations until the greedy validation accuracy first reaches RAM's
final validation accuracy and 70 / 80 / 85 %, iterations to convergence by the paper's
two criteria (:mod:`ppl_attention.attention.convergence`: validation cross-entropy within 0.01 of the run's best,
validation accuracy within 1 point of it), and the final test accuracy greedy / one sampled rollout / Monte-Carlo
average.  A seed whose validation accuracy never reaches a level is counted as such, not averaged.

RAM's final accuracy is a validation accuracy, as the curves it is read from are: the mean over RAM's seeds of the
mean of its last ``FINAL_WINDOW`` validations (one validation is noisy by about a point).  Its final test accuracy
would set a level that RAM's own validation curve may never reach, leaving every speed-up undefined.

The comparisons are numbers with a target each: the paper's claim that PS-NOGS reaches RAM's final accuracy at least
5x sooner at no lower final accuracy, and the thesis's that near-optimal sequences beat a trained RAM's own (PS-RAM)
by 1.2x (CelebA-HQ: 4,750 against 3,820 iterations).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ppl_attention.artifacts import atomic_write_json, atomic_write_text, read_json
from ppl_attention.runtime import run_record

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_supervision as cs  # noqa: E402

__all__ = ["verdict", "markdown", "write", "figure", "THRESHOLDS", "COMPARISONS", "MEASURES", "FINAL_WINDOW"]

#: validation accuracies whose first reaching the table reports (the paper's; a grid may add lower ones)
THRESHOLDS = (0.7, 0.8, 0.85)
#: RAM's final validation accuracy is the mean of its last this many validations
FINAL_WINDOW = 10
#: the figure's running mean, in validations (each is noisy by about a point)
SMOOTH = 10
#: the final test accuracies: summary key -> name
MEASURES = {"test_greedy_acc": "greedy", "test_sampled_acc": "sampled", "test_mc_acc": "MC"}
#: name -> (faster arm, slower arm, the speed-up to RAM's final accuracy the claim sets, at no lower accuracy)
COMPARISONS = {"ps-nogs over ram": ("ps-nogs", "ram", 5.0), "ps-nogs over ps-ram": ("ps-nogs", "ps-ram", 1.2)}


def _stats(values) -> dict:
    """Mean and sample sd of the values that are not None, and how many were None (never reached)."""
    mean, sd = cs.mean_std(values)
    return {"mean": mean, "sd": sd, "n": sum(v is not None for v in values), "never": sum(v is None for v in values)}


def _row(out: Path, arm: str, label: str, seeds, ram_final: float | None, thresholds: tuple = THRESHOLDS) -> dict:
    """One arm's line of the table, from its finished seeds."""
    dirs = [out / f"{arm}-s{k}" for k in seeds if (out / f"{arm}-s{k}" / "summary.json").is_file()]
    runs = [read_json(d / "summary.json") for d in dirs]

    def reach(level):
        return _stats([cs.first_reaching(d, level) for d in dirs])

    stores = [read_json(d / "manifest.json")["config"]["run"].get("sequences") for d in dirs]
    return {
        "label": label,
        "seeds": [r["seed"] for r in runs],
        "missing": [k for k in seeds if not (out / f"{arm}-s{k}" / "summary.json").is_file()],
        "sequences": [None if s is None else Path(s).name for s in stores],
        "reach_ram_final": reach(ram_final) if ram_final is not None else _stats([]),
        "reach": {f"{level:g}": reach(level) for level in thresholds},
        "convergence_loss": _stats([r["iterations_to_convergence_loss"] for r in runs]),
        "convergence_accuracy": _stats([r["iterations_to_convergence_accuracy"] for r in runs]),
        "test": {
            name: _stats([None if r.get(key) is None else 100 * r[key] for r in runs]) for key, name in MEASURES.items()
        },
    }


def _comparison(fast: dict, slow: dict, target: float) -> dict | None:
    """Speed-up of ``fast`` over ``slow`` to RAM's final accuracy (ratio of mean iterations, measured where both
    reach it on every seed), the final accuracy differences, and whether the target holds (None: not measurable)."""
    if not (fast["seeds"] and slow["seeds"]):
        return None
    a, b = fast["reach_ram_final"], slow["reach_ram_final"]
    # validation starts after the first interval, so a reached level's iteration is never 0
    speedup = b["mean"] / a["mean"] if a["never"] == b["never"] == 0 and a["n"] and b["n"] else None
    diff = {
        name: None
        if fast["test"][name]["mean"] is None or slow["test"][name]["mean"] is None
        else fast["test"][name]["mean"] - slow["test"][name]["mean"]
        for name in MEASURES.values()
    }
    lower = diff["greedy"] is not None and diff["greedy"] < 0
    if speedup is not None:
        met = speedup >= target and not lower
    else:  # a seed never reaches RAM's final accuracy: a "no" where only the faster arm's do
        met = False if (a["never"] and not b["never"]) or lower else None
    return {"speedup": speedup, "target_speedup": target, "accuracy_difference": diff, "target_met": met}


def final_validation_accuracy(run: Path, window: int = FINAL_WINDOW) -> float | None:
    """The mean greedy validation accuracy of a run's last ``window`` validations (None: none logged)."""
    last = [a for _, a in cs.validation_curve(run)[-window:]]
    return sum(last) / len(last) if last else None


def verdict(
    out: Path, labels: dict[str, str], seeds, window: int = FINAL_WINDOW, thresholds: tuple = THRESHOLDS
) -> dict:
    """The table of one grid's runs under ``out`` (arms named by ``labels``: arm -> label, RAM's is ``ram``);
    RAM's final accuracy is its validation accuracy over its last ``window`` validations; ``thresholds``: the
    validation accuracies whose first reaching each row reports."""
    finished = [out / f"ram-s{k}" for k in seeds if (out / f"ram-s{k}" / "summary.json").is_file()]
    ram = [read_json(d / "summary.json") for d in finished]
    ram_final_test, _ = cs.mean_std([r["test_greedy_acc"] for r in ram])
    ram_final, _ = cs.mean_std([final_validation_accuracy(d, window) for d in finished])
    rows = {arm: _row(out, arm, label, seeds, ram_final, thresholds) for arm, label in labels.items()}
    ram_reach = rows["ram"]["reach_ram_final"]
    for row in rows.values():  # every arm against RAM, no target: where both reach it on every finished seed
        r = row["reach_ram_final"]
        row["speedup_over_ram"] = (
            ram_reach["mean"] / r["mean"]
            if (ram_reach["n"] and r["n"] and not ram_reach["never"] and not r["never"])
            else None
        )
    comparisons = {
        name: _comparison(rows[fast], rows[slow], target)
        for name, (fast, slow, target) in COMPARISONS.items()
        if fast in rows and slow in rows
    }
    return {
        "ram_final_test_accuracy": None if ram_final_test is None else 100 * ram_final_test,
        "ram_final_validation_accuracy": None if ram_final is None else 100 * ram_final,
        "final_window": window,
        "seeds": list(seeds),
        "thresholds": list(thresholds),
        "rows": rows,
        "comparisons": comparisons,
    }


def _cell(stats: dict, digits: int = 0) -> str:
    if stats["mean"] is None:
        return f"never ({stats['never']} of {stats['never']})" if stats["never"] else "—"
    text = f"{stats['mean']:,.{digits}f} ± {stats['sd']:,.{digits}f}"
    return text + (f" (never: {stats['never']} of {stats['n'] + stats['never']})" if stats["never"] else "")


def _number(x, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def markdown(record: dict) -> str:
    """The table and the comparisons as markdown."""
    final, test = record["ram_final_validation_accuracy"], record["ram_final_test_accuracy"]
    levels = [f"{100 * a:g} %" for a in record["thresholds"]]
    lines = [
        f"Grid {record['grid']}, scale {record['scale']}, seeds {', '.join(map(str, record['seeds']))}; "
        f"RAM's final validation accuracy (greedy, its last {record['final_window']} validations, mean over seeds): "
        f"{_number(final, '.1f')} % (test: {_number(test, '.1f')} %)",
        "",
        "Iterations until the greedy validation accuracy first reaches each level, to convergence (the paper's "
        "criteria), and final test accuracy; mean ± sd over seeds.",
        "",
        "| arm | seeds | to RAM's final val. acc. | "
        + " | ".join(f"to {lv} val. acc." for lv in levels)
        + " | convergence (val. CE within 0.01) | convergence (val. acc. within 1 point) "
        "| test acc. greedy (%) | test acc. sampled (%) | test acc. MC (%) |",
        "|---" * (8 + len(levels)) + "|",
    ]
    for row in record["rows"].values():
        cells = [_cell(row["reach_ram_final"])] + [_cell(row["reach"][f"{a:g}"]) for a in record["thresholds"]]
        cells += [_cell(row["convergence_loss"]), _cell(row["convergence_accuracy"])]
        cells += [_cell(row["test"][m], 1) for m in MEASURES.values()]
        lines.append(f"| {row['label']} | {', '.join(map(str, row['seeds'])) or '—'} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| comparison | speed-up to RAM's final val. acc. | final test acc. difference, greedy / sampled / "
        "MC (points) | target | target met |",
        "|---|---|---|---|---|",
    ]
    for name, c in record["comparisons"].items():
        if c is None:
            lines.append(f"| {name} | — | — | — | not measurable (unfinished) |")
            continue
        diff = " / ".join(_number(d, "+.1f") for d in c["accuracy_difference"].values())
        met = {True: "yes", False: "no", None: "not measurable"}[c["target_met"]]
        lines.append(
            f"| {name} | {_number(c['speedup'], '.2f')} | {diff} | "
            f">= {c['target_speedup']:g}x, no lower greedy accuracy | {met} |"
        )
    missing = [f"{arm}-s{k}" for arm, row in record["rows"].items() for k in row["missing"]]
    if missing:
        lines += ["", f"Unfinished runs, left out: {', '.join(missing)}."]
    lines += ["", f"Command: `{record['command']}`"]
    return "\n".join(lines) + "\n"


def write(out: Path, record: dict) -> None:
    """``out/verdict.json`` (the record, with the versions and the machine) and ``out/verdict.md``."""
    record["run"] = run_record()
    atomic_write_json(out / "verdict.json", record)
    text = markdown(record)
    atomic_write_text(out / "verdict.md", text)
    print(text)


def figure(out: Path, record: dict) -> Path:
    """``out/verdict.png``: each arm's greedy validation accuracy against iterations (a running mean over
    ``SMOOTH`` validations; mean and +- one sd over its finished seeds), with RAM's final accuracy dashed."""
    from ppl_attention.plots.attention import plot_validation_curves

    def history(run: Path) -> list[dict]:
        return [{"iteration": i, "val_greedy_acc": 100 * a} for i, a in cs.validation_curve(run)]

    # one colour per arm in every grid's figure, RAM's first
    order = sorted(record["rows"], key=lambda arm: (arm != "ram", arm))
    colors = {record["rows"][arm]["label"]: f"C{i}" for i, arm in enumerate(order)}
    runs = {
        record["rows"][arm]["label"]: [history(out / f"{arm}-s{k}") for k in record["rows"][arm]["seeds"]]
        for arm in order
        if record["rows"][arm]["seeds"]
    }
    final = record["ram_final_validation_accuracy"]
    seeds = ", ".join(str(k) for k in record["seeds"])
    return plot_validation_curves(
        runs,
        out / "verdict.png",
        ylabel="greedy validation accuracy (%)",
        title=f"{out.name}, seeds {seeds}",
        levels={} if final is None else {f"RAM's final ({final:.1f} %)": final},
        smooth=SMOOTH,
        colors=colors,
    )
