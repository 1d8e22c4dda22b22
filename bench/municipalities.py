"""The municipality dimension: the same pupils over 5, 11 and 25 municipalities (issue 23, part 2).

The night is one ``nightly`` run whatever the number of municipalities (docs/deploy.md, "One run per
night"); what does grow with them is a waitlist delivery, its checks and an export per
municipality. This part of the benchmark measures how much: per count a region from
``bench.regions`` with the same VO pupils and the same schools, generated once, then per round the
in-process night and the reference per count (alternating which goes first), each its own measured
child process as in the scale dimension.

``--municipalities`` in ``python -m bench`` chooses the counts; after each round the production
path (``bench.production``) runs on the count it names.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from bench import BENCH_DIR
from bench.measure import run_measured

PROJECT = BENCH_DIR.parent

DEFAULT_COUNTS = (5, 11, 25)
PUPILS = 9_000  # region scale: the issue's targets are for the region
LIMIT_RATIO_TO_REFERENCE = 4.0  # the night at 11 municipalities, start-up included, against the reference
LIMIT_LARGEST_TO_SMALLEST = 1.25  # 25 municipalities against 5, same pupils
RATIO_COUNT = 11


def prepare(counts: list[int], args: argparse.Namespace, work: Path, say) -> dict[int, dict]:
    """Per count: the region file and its deliveries (generated once, in a measured child)."""
    from bench.regions import template_gemeenten, write_region

    prepared = {}
    for count in counts:
        folder = work / f"municipalities-{count}"
        region = write_region(count, folder)
        generated = run_measured(
            ["generate", "--var", str(folder / "generated"), "--pupils", str(PUPILS), "--seed", str(args.seed),
             "--region", str(region), "--school-gemeenten", *template_gemeenten()],
            env=dict(os.environ), result_path=folder / "generate.json", cwd=PROJECT)
        if generated.returncode != 0:
            raise SystemExit(f"generating {count} municipalities failed (exit {generated.returncode})")
        rows = {source: c["rows"] for source, c in generated.result["counts"]["sources"].items()}
        prepared[count] = {"folder": folder, "region": region, "sources": folder / "generated" / "sources",
                           "rows": rows, "total_rows": sum(rows.values()),
                           "generate": {"wall_s": generated.wall_s, "peak_rss_kib": generated.peak_rss_kib}}
        say(f"{count} municipalities: {sum(rows.values()):,} delivered rows generated in {generated.wall_s:.1f} s")
    return prepared


def measure_round(repeat: int, prepared: dict[int, dict], *, night_record, child_environment, api_server,
                  demo_environment, cache: bool, say) -> list[dict]:
    """One round: per count the pipeline and the reference, in alternating order; the counts ascending in
    odd rounds and descending in even ones, so a drift of the host's speed does not favour one count."""
    nights = []
    for count, setup in sorted(prepared.items(), reverse=not repeat % 2):
        demo_environment(setup["region"])
        with api_server(setup["sources"] / "api", cache=cache, region_path=setup["region"]) as server:
            env = child_environment(server.url)
            order = ("pipeline", "reference") if repeat % 2 else ("reference", "pipeline")
            for kind in order:
                name = f"{kind}-{repeat}"
                load_before = os.getloadavg()[0]
                measured = run_measured([kind, "--var", str(setup["folder"] / name), "--sources",
                                         str(setup["sources"]), "--region", str(setup["region"])],
                                        env=env, result_path=setup["folder"] / f"{name}.json", cwd=PROJECT)
                record = night_record(kind, repeat, measured)
                record["municipalities"] = count
                # Other work on the machine shows in the load average (1 ≈ one busy core besides ours).
                record["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
                nights.append(record)
                say(f"{count} municipalities: {kind} (round {repeat}) {'ok' if record['success'] else 'FAILED'}: "
                    f"wall {record['wall_s']:.1f} s")
    return nights


def summary(nights: list[dict], rows: dict[int, int]) -> dict:
    """Per count and round: pipeline and reference wall, their ratio; per round the largest count's
    pipeline wall over the smallest's; medians over the rounds."""
    counts = sorted({n["municipalities"] for n in nights})
    rounds = sorted({n["repeat"] for n in nights})
    wall = {(n["municipalities"], n["repeat"], n["kind"]): n["wall_s"] for n in nights}
    cpu = {(n["municipalities"], n["repeat"]): n["cpu_s"] for n in nights if n["kind"] == "pipeline"}
    load = {(n["municipalities"], n["repeat"]): n["load_average"]["before"] for n in nights
            if n["kind"] == "pipeline" and "load_average" in n}
    success = {(n["municipalities"], n["repeat"]): n["success"] for n in nights if n["kind"] == "pipeline"}
    per_round = []
    for count in counts:
        for repeat in rounds:
            pipe, ref = wall.get((count, repeat, "pipeline")), wall.get((count, repeat, "reference"))
            per_round.append({"municipalities": count, "repeat": repeat, "rows": rows.get(count),
                              "pipeline_s": pipe, "reference_s": ref, "pipeline_cpu_s": cpu.get((count, repeat)),
                              "load_before": load.get((count, repeat)),
                              "ratio": pipe / ref if pipe and ref else None, "success": success.get((count, repeat))})
    medians = {}
    for count in counts:
        rows = [r for r in per_round if r["municipalities"] == count]
        medians[count] = {key: _median([r[key] for r in rows])
                          for key in ("pipeline_s", "reference_s", "ratio", "pipeline_cpu_s")}
    largest_to_smallest, largest_to_smallest_cpu = [], []
    if len(counts) > 1:
        for repeat in rounds:
            low, high = wall.get((counts[0], repeat, "pipeline")), wall.get((counts[-1], repeat, "pipeline"))
            largest_to_smallest.append(high / low if low and high else None)
            low, high = cpu.get((counts[0], repeat)), cpu.get((counts[-1], repeat))
            largest_to_smallest_cpu.append(high / low if low and high else None)
    return {"counts": counts, "rounds": per_round, "median": medians, "largest_to_smallest": largest_to_smallest,
            "largest_to_smallest_median": _median(largest_to_smallest),
            "largest_to_smallest_cpu": largest_to_smallest_cpu,
            "largest_to_smallest_cpu_median": _median(largest_to_smallest_cpu), "growth": growth(nights)}


def growth(nights: list[dict]) -> list[dict]:
    """Where the pipeline's extra time at the largest count goes: per step (op), and between the steps.

    Median over the rounds of each op's seconds (all its steps) at the smallest and the largest count,
    sorted by the difference; ``(between steps)`` is the night's wall minus its steps (start-up, run
    launch, event log writes outside the steps).
    """
    counts = sorted({n["municipalities"] for n in nights})
    if len(counts) < 2:
        return []

    def per_op(count: int) -> dict[str, float]:
        runs = [n for n in nights if n["kind"] == "pipeline" and n["municipalities"] == count]
        seconds: dict[str, list[float]] = {}
        for night in runs:
            mine: dict[str, float] = {}
            for step in night["steps"]:
                mine[step["op"]] = mine.get(step["op"], 0.0) + step["end"] - step["start"]
            mine["(between steps)"] = night["wall_s"] - sum(v for k, v in mine.items())
            for op, value in mine.items():
                seconds.setdefault(op, []).append(value)
        return {op: statistics.median(values) for op, values in seconds.items()}

    low, high = per_op(counts[0]), per_op(counts[-1])
    rows = [{"op": op, "smallest_s": low.get(op, 0.0), "largest_s": high.get(op, 0.0),
             "per_municipality_ms": 1000 * (high.get(op, 0.0) - low.get(op, 0.0)) / (counts[-1] - counts[0])}
            for op in {*low, *high}]
    return sorted(rows, key=lambda row: -row["per_municipality_ms"])


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def targets(result: dict | None) -> list[dict]:
    """The issue's two municipality targets, median over the rounds, each round's figure beside it."""
    result = result or {}
    counts = result.get("counts", [])
    per_count = [r["ratio"] for r in result.get("rounds", []) if r["municipalities"] == RATIO_COUNT]
    ratio = (result.get("median", {}).get(RATIO_COUNT) or {}).get("ratio")
    spread = result.get("largest_to_smallest_median")
    name = f"{counts[-1]}/{counts[0]} municipalities" if len(counts) > 1 else "25/5 municipalities"
    return [
        _target(f"region {RATIO_COUNT} municipalities: pipeline / reference (wall, start-up included)", ratio,
                LIMIT_RATIO_TO_REFERENCE, per_count, f"{RATIO_COUNT} municipalities not run"),
        _target(f"{name}: pipeline wall, same pupils", spread, LIMIT_LARGEST_TO_SMALLEST,
                result.get("largest_to_smallest", []), "needs two municipality counts"),
    ]


def _target(name: str, value, limit: float, rounds: list, why_missing: str) -> dict:
    return {"target": name, "value": value, "limit": limit, "unit": "×", "met": None if value is None else value <= limit,
            "note": "" if value is not None else why_missing,
            "rounds": [round(r, 3) if r is not None else None for r in rounds]}


def markdown(result: dict | None) -> list[str]:
    if not result:
        return []
    lines = ["", "## Municipalities", "",
             f"The same {PUPILS:,} VO pupils and the same schools over each number of municipalities "
             "(`bench/regions.py`); wall from spawning the process to the end of the work, start-up included.",
             "CPU = user + system of the pipeline's process tree; load = the 1-minute load average before the "
             "pipeline's night (2 cores: above 1 another process competed).",
             "", "| municipalities | round | delivered rows | pipeline wall s | reference wall s | ratio | pipeline CPU s "
             "| load before | pipeline ok |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rounds"]:
        lines.append(f"| {r['municipalities']} | {r['repeat']} | {r['rows'] or 0:,} "
                     f"| {_fmt(r['pipeline_s'])} | {_fmt(r['reference_s'])} | {_fmt(r['ratio'])} "
                     f"| {_fmt(r.get('pipeline_cpu_s'))} | {_fmt(r.get('load_before'), 1)} | {r['success']} |")
    for count, m in result["median"].items():
        lines.append(f"| **{count}** | median | | **{_fmt(m['pipeline_s'])}** | {_fmt(m['reference_s'])} "
                     f"| {_fmt(m['ratio'])} | {_fmt(m.get('pipeline_cpu_s'))} | | |")
    counts = result["counts"]
    if len(counts) > 1:
        per_round = ", ".join(_fmt(v) for v in result["largest_to_smallest"])
        lines += ["", f"Pipeline wall at {counts[-1]} municipalities ÷ at {counts[0]}, per round: {per_round}; "
                      f"median {_fmt(result['largest_to_smallest_median'])}×. The same for the pipeline's CPU time "
                      f"(less disturbed by other work on the host): "
                      f"{', '.join(_fmt(v) for v in result.get('largest_to_smallest_cpu', []))}; median "
                      f"{_fmt(result.get('largest_to_smallest_cpu_median'))}×."]
    if result.get("growth"):
        lines += ["", f"Where the extra time goes (pipeline steps, median over the rounds; {counts[0]} against "
                      f"{counts[-1]} municipalities):", "",
                  f"| step (op) | {counts[0]} municipalities s | {counts[-1]} municipalities s | per added municipality ms |",
                  "|---|---:|---:|---:|"]
        for row in result["growth"][:12]:
            lines.append(f"| `{row['op']}` | {_fmt(row['smallest_s'])} | {_fmt(row['largest_s'])} "
                         f"| {_fmt(row['per_municipality_ms'], 0)} |")
    return lines


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def plot(ax, result: dict | None) -> None:
    """Wall time against the number of municipalities, pipeline and reference (medians, rounds as dots)."""
    if not result:
        ax.set_visible(False)
        return
    for kind, key, style in (("pipeline", "pipeline_s", "o-"), ("reference", "reference_s", "s-")):
        counts = [c for c in result["counts"] if result["median"][c][key] is not None]
        ax.plot(counts, [result["median"][c][key] for c in counts], style, label=f"{kind} (median)")
        colour = ax.lines[-1].get_color()
        dots = [(r["municipalities"], r[key]) for r in result["rounds"] if r[key] is not None]
        if dots:
            ax.plot(*zip(*dots), ".", color=colour, alpha=0.5)
    ax.set_xticks(result["counts"])
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"municipalities (same {PUPILS:,} VO pupils)")
    ax.set_ylabel("wall time, s (start-up included)")
    ax.set_title("Municipality dimension", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
