"""Benchmark: how fast `hekta-redcap` starts, and `hekta-redcap sync` against a bare PyCap export.

Creates the hekta project on the local REDCap-compatible server, loads a synthetic cohort
(`hekta_redcap.devtools.cohort`, 12,000 participants by default) and serves it from a
process of its own
on 127.0.0.1, as a REDCap server is, and times real commands, each in its own process as a user
runs them (median of `--runs`):

- `hekta-redcap --help`: the start-up every command pays;
- the floor: a bare PyCap `export_records` of the same records in the same format (the sync's
  export options, JSON), in a `python -c` process of its own;
- a full sync into an empty store (`hekta-redcap sync`), against the floor;
- an incremental sync after 1% of the records changed, against the full sync. The changes are
  made after the previous run's cursor and the run uses no overlap margin
  (`HEKTA_SYNC_OVERLAP_MINUTES=0`), which stands for waiting the margin out: the default 10
  minutes would pull the whole freshly loaded cohort again.

Floor and full sync runs are interleaved, so other load on the machine hits both alike.

Targets: start-up <= 0.25 s; full sync <= 1.5x the floor; incremental <= 0.34x the full sync.

    .venv/bin/python benchmarks/startup_sync.py [--participants 12000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redcap
from local_server import COMMAND, server_process

from hekta_redcap.core.settings import Settings
from hekta_redcap.data.sync import EXPORT
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.cohort import generate
from hekta_redcap.devtools.provision import SANDBOX_ENV, provision
from hekta_redcap.devtools.sandbox.server import running

# The floor's process: PyCap alone, the URL and token from the environment (not the command line).
BARE_EXPORT = (
    "import os, redcap; "
    "redcap.Project(os.environ['REDCAP_API_URL'], os.environ['REDCAP_TOKEN_HEKTA'])"
    f".export_records(**{EXPORT!r})"
)
TARGETS = {"startup": 0.25, "full": 1.5, "incremental": 0.34}
BASELINE = "baseline_arm_1"


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall time of one process, and its standard output."""
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout.strip()


def median(runs: int, action: Callable[[int], tuple[float, str]]) -> tuple[float, str]:
    """The median time of `runs` runs of `action(run)`, and the last run's output."""
    found = [action(run) for run in range(runs)]
    return statistics.median(t for t, _ in found), found[-1][1]


def change_one_percent(client: redcap.Project, records: list[str], run: int) -> int:
    """Give every hundredth record (a different 1% each run) a new year of birth at baseline."""
    chosen = records[run::100]
    rows = client.export_records(
        records=chosen, fields=["record_id", "demo_birth_year"], events=[BASELINE]
    )
    years = {r["record_id"]: r["demo_birth_year"] for r in rows}
    new = [
        {
            "record_id": r,
            "redcap_event_name": BASELINE,
            "demo_birth_year": "1940" if years.get(r) != "1940" else "1941",
        }
        for r in chosen
    ]
    return int(client.import_records(new)["count"])


def next_second() -> None:
    """REDCap's change times and the sync cursor are to the second: start in a new one."""
    time.sleep(1.02 - time.time() % 1)


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=12_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    project = load_project("hekta")
    with tempfile.TemporaryDirectory() as tmp:
        work, data = Path(tmp), Path(tmp) / "server"
        started = time.perf_counter()
        with running(data) as server:
            provision(server, [project], work / SANDBOX_ENV)  # the commands read it (cwd)
            settings = Settings.load((work / SANDBOX_ENV,), {})
            cohort = generate(project, args.participants, seed=1, errors=False)
            cohort.load(redcap.Project(server.url, settings.token("hekta").reveal()))
        loaded = time.perf_counter() - started
        participants, rows = cohort.participants, len(cohort.rows)
        del cohort
        with server_process(data) as url:
            client = redcap.Project(url, settings.token("hekta").reveal())
            env = {k: v for k, v in os.environ.items() if not k.startswith(("REDCAP_", "HEKTA_"))}
            env["REDCAP_API_URL"] = url  # the token comes from the env file
            floor_env = {**env, "REDCAP_TOKEN_HEKTA": settings.token("hekta").reveal()}

            def store(name: str) -> dict[str, str]:
                return {**env, "HEKTA_STORE": str(work / f"{name}.sqlite3")}

            sync = [COMMAND, "sync", "--project", "hekta"]
            startup, _ = median(2 * args.runs + 1, lambda _: timed([COMMAND, "--help"], work, env))
            floors, fulls = [], []
            for run in range(args.runs):
                floors.append(timed([sys.executable, "-c", BARE_EXPORT], work, floor_env))
                fulls.append(timed(sync, work, store(f"full{run}")))
            floor = statistics.median(t for t, _ in floors)
            full, full_line = statistics.median(t for t, _ in fulls), fulls[-1][1]
            incremental_env = {**store("full0"), "HEKTA_SYNC_OVERLAP_MINUTES": "0"}

            def incremental(run: int) -> tuple[float, str]:
                change_one_percent(client, participants, run)
                next_second()
                return timed(sync, work, incremental_env)

            incremental_time, incremental_line = median(args.runs, incremental)
    ratios = {"full": full / floor, "incremental": incremental_time / full}
    print(
        f"hekta, {len(participants):,} participants ({rows:,} rows), local server on 127.0.0.1 "
        f"in its own process; created, generated and loaded in {loaded:.0f} s"
    )
    print(f"each figure the median of {args.runs} runs, process to process (--help: more)")
    print(
        f"  hekta-redcap --help:             {startup:6.2f} s"
        f"                        target <= {TARGETS['startup']} s: "
        f"{verdict(startup, TARGETS['startup'])}"
    )
    print(f"  bare PyCap export (floor):       {floor:6.2f} s")
    print(
        f"  full sync:                       {full:6.2f} s  {ratios['full']:.2f}x the floor"
        f"          target <= {TARGETS['full']}x: {verdict(ratios['full'], TARGETS['full'])}"
    )
    print(
        f"  incremental sync, 1% changed:    {incremental_time:6.2f} s  "
        f"{ratios['incremental']:.2f}x the full sync  target <= {TARGETS['incremental']}x: "
        f"{verdict(ratios['incremental'], TARGETS['incremental'])}"
    )
    print(f"  last full sync:        {full_line}")
    print(f"  last incremental sync: {incremental_line}")


if __name__ == "__main__":
    main()
