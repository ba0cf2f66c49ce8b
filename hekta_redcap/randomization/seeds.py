"""The allocation tables' randomness: two seeds (development, production) of 256 bits from
`secrets`, the seed file that keeps them, and the stream of random numbers a seed gives for
one stratum.

The stream is SHA-256 in counter mode rather than `random.Random` or numpy, whose shuffles
Python and numpy do not promise to keep from one version to the next: a seed file must give
the same tables in ten years, and a statistician can rebuild the tables from
docs/randomization.md alone.

    >>> stream = Stream(bytes(32), "site=1")
    >>> [stream.below(6) for _ in range(5)]
    [0, 3, 1, 3, 3]
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from hekta_redcap.core.errors import HektaError, Origin

SEED_BYTES = 32
VERSION = "1"  # the stream and block algorithm; a new one gets a new version
_HEX = re.compile(r"[0-9a-fA-F]{64}")
_HEADER = """\
# hekta-redcap randomization seeds (docs/randomization.md: Seeds).
# Secret: whoever holds this file can rebuild the allocation tables and foresee every
# allocation. Keep it readable by you alone, apart from the tables and out of version control.
"""


class SeedFileError(HektaError):
    """A seed file that cannot be read or does not follow the format."""


@dataclass(frozen=True)
class Seeds:
    """The two tables' seeds; kept out of `repr` so that no log or traceback shows them."""

    development: bytes = field(repr=False)
    production: bytes = field(repr=False)

    def of(self, table: str) -> bytes:
        return self.development if table == "development" else self.production


def draw() -> Seeds:
    """Two independent seeds from the operating system's generator."""
    return Seeds(secrets.token_bytes(SEED_BYTES), secrets.token_bytes(SEED_BYTES))


def read_seed_file(path: Path) -> Seeds:
    """The seeds in `path`: `key = value` lines (`version`, `development`, `production`, each
    once; seeds as 64 hex digits), `#` comments and blank lines ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SeedFileError(f"cannot read the seed file: {exc}", Origin(path)) from None
    values: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        where = Origin(path, number)
        if not sep or key not in ("version", "development", "production"):
            raise SeedFileError(
                "expected 'version = 1', 'development = <64 hex digits>' or "
                "'production = <64 hex digits>'",
                where,
            )
        if key in values:
            raise SeedFileError(f"'{key}' is given twice", where)
        if key == "version" and value != VERSION:
            raise SeedFileError(f"version '{value}' is not known (this toolkit: {VERSION})", where)
        if key != "version" and not _HEX.fullmatch(value):
            raise SeedFileError(f"the {key} seed is not 64 hex digits", where)
        values[key] = (value, number)
    for key in ("version", "development", "production"):
        if key not in values:
            raise SeedFileError(f"the seed file has no '{key} = ...' line", Origin(path))
    seeds = Seeds(*(bytes.fromhex(values[k][0]) for k in ("development", "production")))
    if seeds.development == seeds.production:
        raise SeedFileError(
            "the development and production seeds are the same; the tables must be independent",
            Origin(path, values["production"][1]),
        )
    return seeds


def write_seed_file(path: Path, seeds: Seeds) -> None:
    """Create `path` readable and writable by its owner alone (0600 from the start, never
    wider) and write the seeds; an existing file is never replaced."""
    text = (
        f"{_HEADER}version = {VERSION}\n"
        f"development = {seeds.development.hex()}\n"
        f"production = {seeds.production.hex()}\n"
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise SeedFileError(f"cannot create the seed file: {exc.strerror}", Origin(path)) from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def exposed(path: Path) -> bool:
    """Whether the seed file can be read by anyone but its owner (POSIX permissions)."""
    return os.name == "posix" and bool(path.stat().st_mode & 0o077)


class Stream:
    """Random whole numbers for one stratum of one table: SHA-256(seed ‖ 0x00 ‖ key ‖ 0x00 ‖
    counter, 8 bytes big-endian) for counter 0, 1, 2, …, each digest read as four 64-bit
    big-endian words. `key` names the stratum (`site=1`), so strata are independent."""

    def __init__(self, seed: bytes, key: str) -> None:
        self._prefix = seed + b"\0" + key.encode("utf-8") + b"\0"
        self._counter = 0
        self._words: list[int] = []

    def _word(self) -> int:
        if not self._words:
            digest = hashlib.sha256(self._prefix + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
            self._words = [int.from_bytes(digest[i : i + 8], "big") for i in (24, 16, 8, 0)]
        return self._words.pop()

    def below(self, n: int) -> int:
        """A whole number in [0, n), uniform: words at or above the largest multiple of n
        below 2**64 are drawn again, so no number is favoured."""
        limit = (1 << 64) - (1 << 64) % n
        while (word := self._word()) >= limit:
            pass
        return word % n

    def shuffle(self, items: list[str]) -> None:
        """Fisher–Yates in place: for i from the last index down to 1, swap item i with item
        below(i + 1)."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]
