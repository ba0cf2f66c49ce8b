"""The local REDCap-compatible server in a process of its own, as a REDCap server is, for the
benchmarks (run as `python benchmarks/<name>.py`, which puts this folder on the path)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

COMMAND = shutil.which("hekta-redcap", path=str(Path(sys.executable).parent)) or "hekta-redcap"


@contextmanager
def server_process(
    data: Path, *options: str, port: int = 0, log: Path | None = None
) -> Iterator[str]:
    """`hekta-redcap sandbox` on `port` (0: a free one) over the data in `data`, with further
    `options` (faults); its errors go to `log`. Yields its URL; stops it after."""
    argv = [COMMAND, "sandbox", "--port", str(port), "--data", str(data), *options]
    errors = log.open("a") if log else None
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True)
    finally:
        if errors:
            errors.close()
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "Local REDCap-compatible server at <url> (...)"
        if " at " not in line:
            raise SystemExit(
                f"the server did not start: {line!r}" + (f"; see {log}" if log else "")
            )
        yield line.split(" at ", 1)[1].split()[0]
    finally:
        process.terminate()
        process.wait(timeout=30)
