"""``python -m bench`` (``make bench``): the nightly job against the hand-written reference, at three scales.

    python -m bench                                   # region 9 k, province 150 k, national 1 M VO pupils
    python -m bench --scales 2000 --repeat 1          # a quick run while developing
    python -m bench --scales 9000 150000 --keep       # keep the generated deliveries and outputs
    python -m bench --scales --municipalities 5 11 25 # only the municipality dimension and the production path

Per scale: generate the demo region (every source proportional to the pupils), serve its partner
APIs (no fault injection, so no retry waits distort the timing), then run the whole night and the
reference one after the other, each in its own measured child process (``bench.measure``), with
``--repeat`` rounds that alternate which goes first. Writes ``results.md``, ``results.json`` and
``results.png`` (see ``bench/README.md``). Then, at region scale, the same pupils over 5, 11 and 25
municipalities (``bench.municipalities``) and, after each of its rounds, the production path
(``bench.production``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from bench import (
    BENCH_DIR,
    DEFAULT_SCALES,
    ORCHESTRATION,
    OUT_DIR,
    OVERHEAD,
    SEED,
    STAGE_OF_GROUP,
    STAGES,
    scale_name,
)
from bench import municipalities, production
from bench.measure import Measured, run_measured

PROJECT = BENCH_DIR.parent
ROWS_OF = ("startup", *STAGES, "other", "total")
GIB = 2**20  # KiB per GiB
TARGETS = {"national_wall_s": 60.0, "national_ratio": 2.0, "national_rss_gib": 3.0, "region_wall_s": 10.0,
           "growth_exponent": 1.1}  # issue 23 tightened the national ratio (2×) and peak memory (3 GiB)

T0 = time.time()


def say(message: str) -> None:
    print(f"[{time.time() - T0:8.1f}s] {message}", flush=True)


# --------------------------------------------------------------------------- the demo partner APIs


class _ParsedOnce:
    """Stand-in for the demo server's ``json`` module that parses each records file once.

    ``demo.api_server`` re-reads and re-parses a source's whole records file for every page it
    serves, so pulling N records in pages of P costs O(N²/P): minutes per source at national
    scale, spent in the *server* while pipeline and reference wait. The benchmark measures the
    clients, so it serves from memory (and files from ``_CachedDir``); everything else about the
    server (pagination, auth, bodies) is untouched.
    """

    def __init__(self) -> None:
        self._parsed: dict[int, tuple[str, object]] = {}

    def loads(self, text: str) -> object:
        cached = self._parsed.get(id(text))
        if cached is None or cached[0] is not text:
            cached = (text, json.loads(text))
            self._parsed[id(text)] = cached
        return cached[1]

    def __getattr__(self, name: str):
        return getattr(json, name)


class _CachedDir:
    """``api_dir / name`` whose ``read_text`` returns the same string object until the file changes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._texts: dict[Path, tuple[tuple[int, int], str]] = {}

    def __truediv__(self, name: str) -> _CachedFile:
        return _CachedFile(self.root / name, self._texts)


class _CachedFile:
    def __init__(self, path: Path, texts: dict) -> None:
        self.path, self.texts = path, texts

    def read_text(self, encoding: str = "utf-8") -> str:
        stat = self.path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
        cached = self.texts.get(self.path)
        if cached is None or cached[0] != version:
            cached = (version, self.path.read_text(encoding=encoding))
            self.texts[self.path] = cached
        return cached[1]


def api_server(api_dir: Path, *, cache: bool, region_path: Path | None = None):
    """The demo partner APIs of a region (default: the demo region), without faults; the tokens come
    from the environment (``demo_environment``)."""
    import demo.api_server as server_module
    from demo.api_server import DemoApiServer
    from settings.paths import region_file
    from settings.region import load_region

    server = DemoApiServer(load_region(region_path or region_file()), api_dir, faults=None)
    if cache:
        server_module.json = _ParsedOnce()
        server.api_dir = _CachedDir(api_dir)
    return server


def demo_environment(region_path: Path | None = None) -> None:
    """Demo API tokens, pseudonym keys and alert salt, as `make demo` sets them (server and children must agree)."""
    from demo.__main__ import _demo_environment
    from settings.paths import region_file
    from settings.region import load_region

    _demo_environment(load_region(region_path or region_file()))


def child_environment(api_url: str) -> dict[str, str]:
    env = dict(os.environ, SWV_DEMO_API=api_url, PYTHONUNBUFFERED="1")
    for inherited in ("SWV_VAR_DIR", "DAGSTER_HOME", "SWV_WAREHOUSE_URL", "SWV_LAKE_URL", "SWV_REGION_FILE"):
        env.pop(inherited, None)
    return env


# --------------------------------------------------------------------------- stages of one measured night


def pipeline_stages(m: Measured) -> dict[str, dict]:
    """Startup, the four stages from the event log's step windows, and what lies between the steps."""
    spans: dict[str, list[list[float]]] = {stage: [] for stage in STAGES}
    for step in m.result.get("steps", []):
        spans[STAGE_OF_GROUP.get(step["group"], "outputs")].append([step["start"], step["end"]])
    startup = m.result.get("marks", {}).get("startup", m.started)
    stages = {OVERHEAD: m.window([[m.started, startup]]), **{stage: m.window(s) for stage, s in spans.items()}}
    return _with_rest(stages, m)


def reference_stages(m: Measured) -> dict[str, dict]:
    startup = m.result.get("marks", {}).get("startup", m.started)
    spans = m.result.get("stages", {})
    stages = {OVERHEAD: m.window([[m.started, startup]]), **{stage: m.window(spans.get(stage, [])) for stage in STAGES}}
    return _with_rest(stages, m)


def _with_rest(stages: dict[str, dict], m: Measured) -> dict[str, dict]:
    cpu_total = float(m.result.get("cpu_at_done_s", m.cpu_s))
    stages[ORCHESTRATION] = {
        "wall_s": max(m.wall_s - sum(s["wall_s"] for s in stages.values()), 0.0),
        "cpu_s": max(cpu_total - sum(s["cpu_s"] for s in stages.values()), 0.0),
        "peak_rss_kib": None,
    }
    stages["total"] = {"wall_s": m.wall_s, "cpu_s": cpu_total, "peak_rss_kib": m.peak_rss_kib}
    return stages


def night_record(kind: str, repeat: int, m: Measured) -> dict:
    stages = pipeline_stages(m) if kind == "pipeline" else reference_stages(m)
    result = m.result
    rows = result.get("validated_rows") or {k: v for k, v in result.get("asset_rows", {}).items()
                                            if k in _datasets()}
    return {
        "kind": kind, "repeat": repeat, "success": m.returncode == 0 and bool(result.get("success")),
        "returncode": m.returncode, "wall_s": m.wall_s, "process_wall_s": m.ended - m.started,
        "cpu_s": stages["total"]["cpu_s"], "peak_rss_kib": m.peak_rss_kib, "stages": stages,
        "validated_rows": rows, "failures": result.get("failures", []),
        "outputs": result.get("outputs") or {k: v for k, v in result.get("asset_rows", {}).items() if k not in _datasets()},
        "steps": result.get("steps", []),
    }


def _datasets() -> tuple[str, ...]:
    from settings.region import DATASETS

    return DATASETS


# --------------------------------------------------------------------------- one scale


def run_scale(pupils: int, args: argparse.Namespace, work: Path) -> dict:
    name = scale_name(pupils)
    folder = work / f"{pupils}"
    say(f"{name} ({pupils:,} pupils): generating the deliveries")
    generated = run_measured(["generate", "--var", str(folder / "generated"), "--pupils", str(pupils), "--seed",
                              str(args.seed)], env=dict(os.environ), result_path=folder / "generate.json", cwd=PROJECT)
    if generated.returncode != 0:
        raise SystemExit(f"generating {pupils:,} pupils failed (exit {generated.returncode})")
    counts = generated.result["counts"]
    rows = {source: c["rows"] for source, c in counts["sources"].items()}
    total_rows = sum(rows.values())
    say(f"{name}: generated {total_rows:,} delivered rows in {generated.wall_s:.1f} s "
        f"(peak RSS {generated.peak_rss_kib / GIB:.2f} GiB)")
    sources = folder / "generated" / "sources"
    nights = []
    with api_server(sources / "api", cache=not args.no_server_cache) as server:
        env = child_environment(server.url)
        say(f"{name}: partner APIs on {server.url}, no fault injection")
        for repeat in range(1, args.repeat + 1):
            order = ("pipeline", "reference") if repeat % 2 else ("reference", "pipeline")
            for kind in order:
                say(f"{name}: {kind} (round {repeat} of {args.repeat}); load average {os.getloadavg()[0]:.2f}")
                load_before = os.getloadavg()[0]
                measured = run_measured([kind, "--var", str(folder / f"{kind}-{repeat}"), "--sources", str(sources)],
                                        env=env, result_path=folder / f"{kind}-{repeat}.json", cwd=PROJECT)
                record = night_record(kind, repeat, measured)
                # Other work on the machine shows in the load average (1 ≈ one busy core besides ours).
                record["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
                nights.append(record)
                say(f"{name}: {kind} {'ok' if record['success'] else 'FAILED'}: wall {record['wall_s']:.1f} s, "
                    f"CPU {record['cpu_s']:.1f} s, peak RSS {record['peak_rss_kib'] / GIB:.2f} GiB")
    say(f"{name}: comparing the last round's outputs by content")
    content = content_crosscheck(folder / f"pipeline-{args.repeat}", folder / f"reference-{args.repeat}")
    if not args.keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return {"pupils": pupils, "name": name, "rows": rows, "total_rows": total_rows,
            "generate": {"wall_s": generated.wall_s, "cpu_s": generated.cpu_s, "peak_rss_kib": generated.peak_rss_kib},
            "nights": nights, "summary": summarise(nights, total_rows), "crosscheck": content}


def content_crosscheck(pipeline_var: Path, reference_out: Path) -> dict:
    """``bench.crosscheck`` on one round's outputs, as JSON; a side that left no outputs is an error, not a crash."""
    from dataclasses import asdict

    from bench.crosscheck import crosscheck

    try:
        return {thing: asdict(result) for thing, result in crosscheck(pipeline_var, reference_out).items()}
    except (OSError, ValueError, KeyError) as error:
        return {"error": f"{type(error).__name__}: {error}"}


def summarise(nights: list[dict], total_rows: int) -> dict:
    """Median over the rounds per kind and stage, rows per second, and pipeline / reference."""
    out: dict = {}
    for kind in ("pipeline", "reference"):
        runs = [n for n in nights if n["kind"] == kind]
        if not runs:
            continue
        stages = {}
        for stage in ROWS_OF:
            values = {metric: [r["stages"][stage][metric] for r in runs if r["stages"][stage][metric] is not None]
                      for metric in ("wall_s", "cpu_s", "peak_rss_kib")}
            stages[stage] = {metric: (statistics.median(v) if v else None) for metric, v in values.items()}
            wall = stages[stage]["wall_s"]
            stages[stage]["rows_per_s"] = total_rows / wall if wall and stage in (*STAGES, "total") else None
        out[kind] = {"stages": stages, "success": all(r["success"] for r in runs),
                     "validated_rows": runs[-1]["validated_rows"], "outputs": runs[-1]["outputs"]}
    if "pipeline" in out and "reference" in out:
        out["ratio"] = {stage: _ratio(out["pipeline"]["stages"][stage]["wall_s"], out["reference"]["stages"][stage]["wall_s"])
                        for stage in ROWS_OF if stage != ORCHESTRATION}  # the reference has no orchestration
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None where b is below the sampling resolution."""
    return a / b if a is not None and b is not None and b >= 0.005 else None


# --------------------------------------------------------------------------- targets and reports


def machine() -> dict:
    import dagster
    import pandas
    import pandera
    import pyarrow

    memory_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"cores": os.cpu_count(), "memory_gib": round(memory_kib / GIB, 1), "cpu": model,
            "python": platform.python_version(), "pandas": pandas.__version__, "pyarrow": pyarrow.__version__,
            "dagster": dagster.__version__, "pandera": pandera.__version__, "platform": platform.platform()}


def growth(scales: list[dict], kind: str) -> list[dict]:
    """Exponent b in wall ∝ rows^b between consecutive scales (1 = linear), and the marginal cost per row."""
    import math

    points = [(s["total_rows"], s["summary"][kind]["stages"]["total"]["wall_s"], s["name"]) for s in scales
              if kind in s["summary"]]
    out = []
    for (r0, w0, n0), (r1, w1, n1) in zip(points, points[1:]):
        out.append({"from": n0, "to": n1, "exponent": math.log(w1 / w0) / math.log(r1 / r0),
                    "marginal_us_per_row": 1e6 * (w1 - w0) / (r1 - r0), "us_per_row": 1e6 * w1 / r1})
    return out


def targets(scales: list[dict]) -> list[dict]:
    by_pupils = {s["pupils"]: s["summary"] for s in scales}
    checks = []

    def check(name: str, value, limit, unit: str, why_missing: str, rounds: list | None = None) -> None:
        met = None if value is None else value <= limit
        checks.append({"target": name, "value": value, "limit": limit, "unit": unit, "met": met,
                       "note": "" if value is not None else why_missing, "rounds": rounds or []})

    nights = {s["pupils"]: s["nights"] for s in scales}

    def per_round(pupils: int, figure) -> list:
        """The target's figure in each round (pipeline and reference of the same round)."""
        runs = nights.get(pupils, [])
        by = {(n["kind"], n["repeat"]): n for n in runs}
        return [figure(by[("pipeline", r)], by.get(("reference", r))) for r in sorted({n["repeat"] for n in runs})
                if ("pipeline", r) in by]

    national, region = by_pupils.get(1_000_000), by_pupils.get(9_000)
    pipe = (national or {}).get("pipeline", {}).get("stages", {}).get("total", {})
    check("national: nightly job wall time", pipe.get("wall_s"), TARGETS["national_wall_s"], "s", "national scale not run",
          per_round(1_000_000, lambda p, r: p["wall_s"]))
    check("national: pipeline / reference (wall)", (national or {}).get("ratio", {}).get("total"),
          TARGETS["national_ratio"], "×", "national scale not run",
          per_round(1_000_000, lambda p, r: p["wall_s"] / r["wall_s"] if r else None))
    rss = pipe.get("peak_rss_kib")
    check("national: peak RSS", None if rss is None else rss / GIB, TARGETS["national_rss_gib"], "GiB",
          "national scale not run", per_round(1_000_000, lambda p, r: p["peak_rss_kib"] / GIB))
    check("region: wall time incl. process start-up",
          (region or {}).get("pipeline", {}).get("stages", {}).get("total", {}).get("wall_s"),
          TARGETS["region_wall_s"], "s", "region scale not run", per_round(9_000, lambda p, r: p["wall_s"]))
    steps = growth(scales, "pipeline")
    check("growth: wall ∝ rows^b, largest b between scales", max((g["exponent"] for g in steps), default=None),
          TARGETS["growth_exponent"], "", "needs two scales")
    return checks


def _content_cell(result: dict | None) -> str:
    if result is None:
        return "–"
    if result["equal"]:
        return f"✓ {result['pipeline_rows']:,}"
    return f"✗ {result['pipeline_rows']:,} / {result['reference_rows']:,}"


def _fmt(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _gib(kib) -> str:
    return "–" if kib is None else f"{kib / GIB:.2f}"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Run {report['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory; Python {m['python']}, "
        f"pandas {m['pandas']}, pyarrow {m['pyarrow']}, dagster {m['dagster']}, pandera {m['pandera']}.",
        f"Command: `{report['command']}`; {report['repeat']} round(s) per scale (median shown), pipeline and "
        "reference alternating; demo partner APIs without fault injection"
        + (" (served from memory: see bench/README.md)." if report["server_cache"] else "."),
        "",
        "Wall = from spawning the process to the end of the work (start-up included); CPU = user + system of "
        "the process and any worker processes; peak RSS per stage from /proc samples every 20 ms (the process "
        "tree's memory), total the larger of that and wait4's. Rows/s = delivered "
        "rows ÷ wall time of the stage. `startup` = interpreter, imports and (pipeline) loading the definitions; "
        "`other` = the time between the steps (run launch, resources, event log, IO-manager reads outside steps).",
        "",
        "| scale | rows | stage | pipeline wall s | reference wall s | ratio | pipeline CPU s | reference CPU s "
        "| pipeline peak RSS GiB | reference peak RSS GiB | pipeline rows/s | reference rows/s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scale in report["scales"]:
        summary = scale["summary"]
        pipe = summary.get("pipeline", {}).get("stages", {})
        ref = summary.get("reference", {}).get("stages", {})
        for stage in ROWS_OF:
            p, r = pipe.get(stage, {}), ref.get(stage, {})
            bold = "**" if stage == "total" else ""
            lines.append(
                f"| {scale['name']} | {scale['total_rows']:,} | {bold}{stage}{bold} | {bold}{_fmt(p.get('wall_s'), 2)}{bold} "
                f"| {_fmt(r.get('wall_s'), 2)} | {_fmt(summary.get('ratio', {}).get(stage), 2)} "
                f"| {_fmt(p.get('cpu_s'), 2)} | {_fmt(r.get('cpu_s'), 2)} | {_gib(p.get('peak_rss_kib'))} "
                f"| {_gib(r.get('peak_rss_kib'))} | {_fmt(p.get('rows_per_s'), 0)} | {_fmt(r.get('rows_per_s'), 0)} |")
    lines += ["", "## Targets", "", "Measured = median over the rounds; each round's figure beside it.", "",
              "| target | measured | per round | limit | met |", "|---|---:|---|---:|---|"]
    for t in report["targets"]:
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        rounds = ", ".join(_fmt(r, 2) for r in t.get("rounds", []))
        lines.append(f"| {t['target']} | {_fmt(t['value'], 2)} {t['unit']} | {rounds} | {t['limit']} {t['unit']} "
                     f"| {met} {t['note']} |")
    lines += municipalities.markdown(report.get("municipalities"))
    lines += production.markdown(report.get("production"), report.get("production_municipalities"))
    lines += ["", "## Growth with rows", "", "| kind | from | to | exponent b (wall ∝ rows^b) | µs per row | "
              "marginal µs per row |", "|---|---|---|---:|---:|---:|"]
    for kind in ("pipeline", "reference"):
        for g in report["growth"][kind]:
            lines.append(f"| {kind} | {g['from']} | {g['to']} | {g['exponent']:.2f} | {g['us_per_row']:.1f} "
                         f"| {g['marginal_us_per_row']:.1f} |")
    lines += ["", "## Cross-checks", "", "Content, not counts (`bench/crosscheck.py`): ✓ and the rows where the pipeline's "
              "and the reference's rows hash-equal, ✗ and both counts where they do not.", "",
              "| scale | validated ✓ | quarantine ✓ | alerts ✓ | handovers ✓ | pipeline success "
              "| load average before/after each run | generator wall s | generator peak RSS GiB |",
              "|---|---|---|---|---|---|---|---:|---:|"]
    differences = []
    for scale in report["scales"]:
        summary = scale["summary"]
        loads = ", ".join(f"{n['kind'][:3]} {n['load_average']['before']:.1f}/{n['load_average']['after']:.1f}"
                          for n in scale["nights"] if "load_average" in n)
        content = scale.get("crosscheck", {})
        cells = [_content_cell(content.get(thing)) if "error" not in content else content["error"]
                 for thing in ("validated", "quarantine", "alerts", "handovers")]
        differences += [f"- {scale['name']}, {thing}: {example}" for thing, result in content.items()
                        if isinstance(result, dict) for example in result["examples"][:5]]
        lines.append(f"| {scale['name']} | {' | '.join(cells)} | "
                     f"{summary.get('pipeline', {}).get('success')} | {loads} | {scale['generate']['wall_s']:.1f} | "
                     f"{_gib(scale['generate']['peak_rss_kib'])} |")
    if differences:
        lines += ["", "Differences (rows by provenance or hashed pupil key):", "", *differences]
    lines += ["", "Slowest pipeline steps (largest scale, wall s):", ""]
    if report["scales"]:
        largest = report["scales"][-1]
        steps = [s for n in largest["nights"] if n["kind"] == "pipeline" for s in n["steps"]]
        per_op: dict[str, float] = {}
        for s in steps:
            per_op[s["op"]] = per_op.get(s["op"], 0.0) + (s["end"] - s["start"])
        runs = max(1, sum(1 for n in largest["nights"] if n["kind"] == "pipeline"))
        for op, seconds in sorted(per_op.items(), key=lambda item: -item[1])[:12]:
            lines.append(f"- `{op}`: {seconds / runs:.2f}")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, by_municipalities) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    municipalities.plot(by_municipalities, report.get("municipalities"))
    for kind, style in (("pipeline", "o-"), ("reference", "s-")):
        points = [(s["total_rows"], s["summary"][kind]["stages"]["total"]["wall_s"], s["name"]) for s in report["scales"]
                  if kind in s["summary"]]
        if not points:
            continue
        rows, walls, names = zip(*points)
        ax.plot(rows, walls, style, label=f"{kind} (whole night)")
        guide = [walls[-1] * r / rows[-1] for r in rows]
        ax.plot(rows, guide, ":", color=ax.lines[-1].get_color(), alpha=0.6, label=f"linear through {kind}'s largest")
        for r, w, n in zip(rows, walls, names):
            ax.annotate(f"{n}\n{w:.1f} s", (r, w), textcoords="offset points", xytext=(6, -4), fontsize=8)
    ax.axhline(TARGETS["national_wall_s"], color="grey", linestyle="--", linewidth=0.8, label="60 s target (national)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("delivered rows (all sources)")
    ax.set_ylabel("wall time, s (process start to end of work)")
    m = report["machine"]
    ax.set_title(f"Nightly job vs hand-written reference ({m['cores']} cores, {m['memory_gib']} GiB, {report['date']})",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_municipality_dimension(args: argparse.Namespace, work: Path, report: dict, write) -> None:
    """The municipality dimension and, after each of its rounds, the production path (``bench.municipalities``,
    ``bench.production``); results written after every round."""
    counts = sorted(set(args.municipalities))
    say(f"municipalities: {', '.join(map(str, counts))}, {municipalities.PUPILS:,} pupils each; {args.repeat} round(s)")
    prepared = municipalities.prepare(counts, args, work, say)
    cache = not args.no_server_cache
    nights, paths = [], []
    report["production_municipalities"] = args.production if args.production in prepared else None
    for repeat in range(1, args.repeat + 1):
        nights += municipalities.measure_round(repeat, prepared, night_record=night_record,
                                               child_environment=child_environment, api_server=api_server,
                                               demo_environment=demo_environment, cache=cache, say=say)
        if args.production in prepared:
            setup = prepared[args.production]
            with api_server(setup["sources"] / "api", cache=cache, region_path=setup["region"]) as server:
                env = child_environment(server.url)
                runs = (production.swv_night, production.daemon_night)
                for run in runs if repeat % 2 else runs[::-1]:
                    record = run(setup, repeat, env, say)
                    paths.append(record)
                    say(f"production path, {record['path']} (round {repeat}) {'ok' if record['success'] else 'FAILED'}: "
                        f"wall {record['wall_s']:.1f} s")
        report["municipalities"] = municipalities.summary(nights, {c: p["total_rows"] for c, p in prepared.items()})
        report["municipalities"]["generate"] = {c: p["generate"] for c, p in prepared.items()}
        in_process = {n["repeat"]: n["wall_s"] for n in nights
                      if n["kind"] == "pipeline" and n["municipalities"] == args.production}
        report["production"] = production.summary(paths, in_process) if paths else None
        write(report)
    if not args.keep:
        import shutil

        for setup in prepared.values():
            shutil.rmtree(setup["folder"], ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--scales", type=int, nargs="*", default=list(DEFAULT_SCALES),
                        help="VO pupils per scale (none: no scale dimension)")
    parser.add_argument("--municipalities", type=int, nargs="*", default=list(municipalities.DEFAULT_COUNTS),
                        help="municipality counts at region scale, same pupils (none: no municipality dimension)")
    parser.add_argument("--production", type=int, default=municipalities.RATIO_COUNT, metavar="COUNT",
                        help="run the production path (swv night, daemon) on this municipality count (0: not at all)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per scale (pipeline and reference each)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--results", type=Path, default=BENCH_DIR, help="folder for results.md/.json/.png")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a new one under bench/out)")
    parser.add_argument("--keep", action="store_true", help="keep each scale's deliveries and outputs")
    parser.add_argument("--no-server-cache", action="store_true",
                        help="let the demo API server re-parse its records file for every page (slow at scale)")
    args = parser.parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(os.path.realpath(OUT_DIR / f"run-{dt.datetime.now():%Y%m%d-%H%M%S}"))
    work.mkdir(parents=True, exist_ok=True)
    say(f"benchmark: scales {', '.join(f'{s:,}' for s in args.scales)}; {args.repeat} round(s); working in {work}")
    report = {"date": dt.date.today().isoformat(), "machine": machine(), "command": " ".join(["python -m bench", *(argv or sys.argv[1:])]),
              "repeat": args.repeat, "seed": args.seed, "server_cache": not args.no_server_cache, "targets_limits": TARGETS,
              "scales": []}
    args.results.mkdir(parents=True, exist_ok=True)
    demo_environment()

    def write(report: dict) -> None:
        """Written after every scale and round, so a long run that is stopped still leaves its results."""
        report["growth"] = {kind: growth(report["scales"], kind) for kind in ("pipeline", "reference")}
        report["targets"] = (targets(report["scales"]) + municipalities.targets(report.get("municipalities"))
                             + production.targets(report.get("production"), report.get("production_municipalities")))
        (args.results / "results.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        (args.results / "results.md").write_text(markdown(report), encoding="utf-8")
        plot(report, args.results / "results.png")

    for pupils in sorted(args.scales):
        report["scales"].append(run_scale(pupils, args, work))
        write(report)
    if args.municipalities:
        run_municipality_dimension(args, work, report, write)
    say(f"done: {args.results / 'results.md'}")
    print()
    print(markdown(report))
    same = all(result.get("equal", False) for s in report["scales"] for result in s["crosscheck"].values()
               if isinstance(result, dict)) and not any("error" in s["crosscheck"] for s in report["scales"])
    ok = [n["success"] for s in report["scales"] for n in s["nights"]]
    ok += [r["success"] for r in (report.get("municipalities") or {}).get("rounds", [])]
    ok += [r["success"] for r in (report.get("production") or {}).get("runs", [])]
    return 0 if same and all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
