"""``python -m demo``: generate the demo region, serve its partner APIs, run a night, show the outputs.

    python -m demo run [--pupils N] [--seed S] [--port P]  what `make demo` does
    python -m demo generate [--pupils N] [--seed S]  only write the deliveries and the truth file
    python -m demo serve [--port 8765]               only serve the partner APIs (for `make ui`)
    python -m demo env                               print the demo's secrets as shell exports (for `make ui`)
    python -m demo pictures                          the docs' pictures of the outputs (`make pictures`)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from connectors.secrets import ALERT_SALT_ENV, export_key_variable
from settings.paths import region_file, var_layout
from settings.region import load_region

# The demo's deliveries from the Westerveld-style API: now and then rate-limited or unavailable,
# so every demo night exercises the retries (keyed by source id of the demo region YAML).
DEMO_FAULTS = {"wachtlijst_westerveld": {"rate_limit_every": 7, "unavailable_every": 11, "retry_after_s": 1}}
DEMO_EXPORT_KEY_PREFIX = "demo-pseudonym-key-"
DEMO_ALERT_SALT = "swv-demo-alert-salt-replace-in-production"  # public: the pipeline has no default salt


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _demo_environment(region) -> dict[str, str]:
    """Demo-only secrets, where not set already: tokens for the demo API, per-municipality pseudonym
    keys and the alert salt. The pipeline itself has no default for any of them (connectors/secrets.py).
    Returns them as they are now in the environment."""
    secrets = {}
    for source in region.sources.values():
        auth = getattr(source.location, "auth", None)
        if auth is not None:
            secrets[auth.token_env] = f"demo-token-{auth.token_env.lower()}"
    for code in region.gemeente_codes:
        secrets[export_key_variable(code)] = DEMO_EXPORT_KEY_PREFIX + code
    secrets[ALERT_SALT_ENV] = DEMO_ALERT_SALT
    return {name: os.environ.setdefault(name, value) for name, value in secrets.items()}


def generate(args) -> dict:
    from demo.generate import generate_region

    region = load_region(region_file())
    var = var_layout()
    _say(f"generating region {region.swv.code} (seed {args.seed}, pupils {args.pupils or 'default'}) in {var.sources}")
    counts = generate_region(region, var.sources, var.root / "demo" / "truth.json", seed=args.seed,
                             pupils=args.pupils, progress=_say)
    return counts


DEMO_API_PORT = 8765  # the port in the demo YAML's default URLs (${SWV_DEMO_API:-http://127.0.0.1:8765})


def _demo_port() -> int:
    """The demo API's usual port, so API delivery names (their URLs) are the same every run; else any free one."""
    import socket

    for port in (DEMO_API_PORT, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                _say(f"port {port} is taken (is `make ui` running?); the demo APIs use another port this time")
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def run(args) -> int:
    region = load_region(region_file())
    _demo_environment(region)
    counts = generate(args)
    var = var_layout()
    var.dagster_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(var.dagster_home))

    from demo.api_server import DemoApiServer

    port = args.port if args.port is not None else _demo_port()
    os.environ["SWV_DEMO_API"] = f"http://127.0.0.1:{port}"
    with DemoApiServer(load_region(region_file()), var.sources / "api", port=port, faults=DEMO_FAULTS) as server:
        _say(f"partner APIs served on {server.url}")
        import dagster as dg

        from pipelines.definitions import build_definitions
        from pipelines.night import run_night

        defs = build_definitions()
        with dg.DagsterInstance.get() as instance:
            result = run_night(defs, instance, progress=_say)
    if result.nightly.success:
        # The monitor's report gets a trend: its figures of every Monday since the start of
        # the school year, recomputed from the deliveries as they were known then (docs/monitor.md).
        from pipelines.commands.monitor_backfill import main as monitor_backfill

        _say("monitor: recomputing the Mondays since the start of the school year for the report's trend")
        if monitor_backfill(["--every", "week"]) != 0:
            return 1
    _report(counts, result, var, {g.code: g.naam for g in region.gemeenten})
    return 0 if result.success else 1


def _report(counts: dict, result, var, names: dict[str, str]) -> None:
    print("\nDemo region deliveries (var/sources):")
    print(f"  {'source':28} {'dataset':20} {'files':>5} {'rows':>9} {'planted defects':>15}")
    for source_id, c in sorted(counts["sources"].items()):
        print(f"  {source_id:28} {c['dataset']:20} {c['files']:>5} {c['rows']:>9,} {c['defects']:>15}")
    print("  planted situations: " + ", ".join(f"{k} {v}" for k, v in sorted(counts["alerts"].items())))
    print(f"  no consent: {counts['no_consent']}, outside the region: {counts['out_of_region']}")

    print("\nOutputs:")
    outbox = var.outbox
    for folder, what in (("overdracht", "warm-handover files"), ("signalen", "alert lists"),
                         ("gemeenten", "municipal exports"), ("monitor", "monitor reports"),
                         ("terugkoppeling", "partner feedback")):
        files = sorted(p for p in (outbox / folder).rglob("*") if p.is_file() and "_versies" not in p.parts)
        folders = sorted({p.parent for p in files})
        print(f"  {what:20} {len(files):>4} files in {len(folders):>3} folders under {outbox / folder}")
    print(f"  {'warehouse':20} {_without_password(os.environ.get('SWV_WAREHOUSE_URL') or var.warehouse_url)}")
    print(f"  {'raw snapshots':20} {var.lake / 'raw'}")
    print(f"  {'run history':20} {var.dagster_home}")

    def status(runs: dict) -> str:
        return ", ".join(f"{names.get(k, k)} ({k}) {'ok' if v else 'FAILED'}" for k, v in runs.items())

    print(f"\nNight {'succeeded' if result.success else 'FAILED'}.")
    print(f"  waitlists: {status(result.waitlists)}")
    print(f"  exports:   {status(result.exports)}")
    reports = sorted((outbox / "monitor").glob("*/monitor.html"))
    if reports:
        print(f"\nThe board's report (open it in a browser): {reports[-1]}")
    print("\nOpen the UI with `make ui`, then http://127.0.0.1:3000: runs, asset checks, quarantined rows.")


def _without_password(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True)


def serve(args) -> int:
    from demo.api_server import DemoApiServer

    region = load_region(region_file())
    _demo_environment(region)
    with DemoApiServer(region, var_layout().sources / "api", port=args.port, faults=DEMO_FAULTS) as server:
        _say(f"serving the demo partner APIs on {server.url} (Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


def env(args) -> int:
    import shlex

    for name, value in _demo_environment(load_region(region_file())).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "generate"):
        p = sub.add_parser(name)
        p.add_argument("--pupils", type=int, default=None, help="VO pupils (default: the real region's size)")
        p.add_argument("--seed", type=int, default=2203)
    sub.choices["run"].add_argument("--port", type=int, default=None,
                                    help=f"port of the demo APIs (default: {DEMO_API_PORT}, or any free one)")
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=8765)
    sub.add_parser("env")
    sub.add_parser("pictures")
    args = parser.parse_args(argv)
    if args.command == "generate":
        generate(args)
        return 0
    if args.command == "pictures":
        from demo.pictures import main as pictures

        return pictures()
    return {"run": run, "serve": serve, "env": env}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
