"""Benchmark: sync the trial's project with 10,000 participants x 3 events into the local store.

Loads a synthetic cohort (`hekta_redcap.devtools.cohort`) into the hekta project on the local
REDCap-compatible server, run in its own process as a REDCap server is, then prints:

- the floor: PyCap's `export_records` of the same rows alone (one call, the sync's options);
- a full sync into an empty store (dictionary, id listing, batches, digests, one commit);
- an incremental sync after 1% of the records changed (no overlap margin: the whole cohort was
  loaded minutes ago, and the default 10-minute margin would pull it all again);
- the full sync's peak memory (Python allocations, tracemalloc, in a separate full sync).

Each timing is the best of three runs (floor and full sync interleaved), as timeit does: other
work on the machine only ever adds time.

Targets: the full sync within 1.5x the floor; the incremental sync under 5% of the full sync.

    .venv/bin/python benchmarks/sync.py [--participants 10000] [--batch-size N] [--workers N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import redcap
from local_server import server_process

from hekta_redcap.core.settings import Settings
from hekta_redcap.data import sync
from hekta_redcap.data.store import Store
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.cohort import generate
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.server import running
from hekta_redcap.gateway import EXPORT


def seconds(timing: tuple[float, Any]) -> float:
    return timing[0]


def one_change(record: str, year: str) -> dict[str, str]:
    """A new year of birth at baseline."""
    new = "1940" if year != "1940" else "1941"
    return {"record_id": record, "redcap_event_name": "baseline_arm_1", "demo_birth_year": new}


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    project = load_project("hekta")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with running(root / "server") as server:  # provisioned in-process, then served apart
            provision(server, [project], root / ".env")
        settings = Settings.load((root / ".env",), {})
        with server_process(root / "server") as url:
            settings = Settings({**settings.values, "REDCAP_API_URL": url})
            client = redcap.Project(url, settings.token("hekta").reveal())
            built, cohort = timed(lambda: generate(project, args.participants, seed=1))
            loaded, _ = timed(lambda: cohort.load(client))

            def full_sync(name: str) -> sync.SyncResult:
                with Store(root / f"{name}.sqlite3") as store:
                    return sync.run(
                        settings, "hekta", store=store, progress=False,
                        batch_size=args.batch_size, workers=args.workers,
                    )  # fmt: skip

            def incremental_sync() -> sync.SyncResult:
                with Store(root / "full.sqlite3") as store:
                    return sync.run(
                        settings, "hekta", store=store, progress=False, overlap=dt.timedelta(0)
                    )

            floors, fulls = [], []
            for name in ("full", "full2", "full3"):  # interleaved: load from elsewhere hits both
                floors.append(timed(lambda: client.export_records(**EXPORT)))
                fulls.append(timed(partial(full_sync, name)))
            (floor, rows), (full, first) = min(floors, key=seconds), min(fulls, key=seconds)
            years = {r["record_id"]: r["demo_birth_year"] for r in rows if r["demo_birth_year"]}
            incrementals = []
            for offset in range(len(fulls)):
                changed = cohort.participants[offset::100]  # 1%, each to a new value
                client.import_records([one_change(r, years.get(r, "")) for r in changed])
                time.sleep(1.02 - time.time() % 1)  # change times are to the second, as the cursor
                incrementals.append(timed(incremental_sync))
            incremental, second = min(incrementals, key=seconds)
            tracemalloc.start()
            full_sync("memory")
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    records = len(cohort.participants)
    print(f"project: hekta, {records:,} participants, {len(rows):,} rows x {len(rows[0])} columns")
    print(f"  generate cohort:                   {built:>8.2f} s   load via API: {loaded:.2f} s")
    print(f"  (best of {len(fulls)} runs each)")
    print(f"  floor: PyCap export_records:       {floor:>8.2f} s")
    print(
        f"  full sync:                         {full:>8.2f} s   "
        f"{full / floor:.2f}x the floor (target <= 1.5x); {first.requested:,} records"
    )
    print(
        f"  incremental sync, 1% changed:      {incremental:>8.2f} s   "
        f"{incremental / full:.1%} of the full sync (target < 5%); "
        f"{second.requested} requested, {second.changed} changed"
    )
    print(f"  full sync peak memory (tracemalloc): {peak / 1e6:>6.0f} MB")


if __name__ == "__main__":
    main()
