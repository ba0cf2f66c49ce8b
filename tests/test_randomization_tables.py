"""The allocation tables: balance within every block, varying block sizes, independent strata
and tables, reproducible from a seed file and only from it, the seeds kept secret, REDCap's
upload format, the manifest and summary, and the command end to end.

Expected tables come from a second implementation of the algorithm as docs/randomization.md
states it (`reference`), written here with struct rather than the code's own helpers, and
expected statistics from counting the written CSV files."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import stat
import struct
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import REPO, edit, line_of

from hekta_redcap.core.errors import HektaError
from hekta_redcap.definitions.study import load_project
from hekta_redcap.randomization.design import design_of
from hekta_redcap.randomization.seeds import Stream
from hekta_redcap.randomization.tables import read_table, write_tables

DEV = "11" * 32
PROD = "22" * 32
OTHER = "33" * 32
SEED_TEXT = f"version = 1\ndevelopment = {DEV}\nproduction = {PROD}\n"


def seed_file(where: Path, development: str = DEV, production: str = PROD) -> Path:
    path = where / "seeds.txt"
    path.write_text(f"version = 1\ndevelopment = {development}\nproduction = {production}\n")
    return path


def reference(
    seed: str, key: str, sizes: list[int], ratios: list[tuple[str, int]], slots: int
) -> tuple[list[int], list[str]]:
    """The documented algorithm, written again: SHA-256(seed ‖ 0 ‖ key ‖ 0 ‖ counter) read as
    big-endian 64-bit words, uniform draws by rejection, Fisher–Yates from the end; block
    sizes in ascending order; blocks until `slots`."""
    counter = 0
    words: list[int] = []

    def word() -> int:
        nonlocal counter
        if not words:
            message = bytes.fromhex(seed) + b"\0" + key.encode() + b"\0"
            words.extend(
                struct.unpack(">4Q", hashlib.sha256(message + struct.pack(">Q", counter)).digest())
            )
            counter += 1
        return words.pop(0)

    def below(n: int) -> int:
        while True:
            w = word()
            if w < 2**64 - 2**64 % n:
                return w % n

    unit = sum(r for _, r in ratios)
    drawn: list[int] = []
    sequence: list[str] = []
    while len(sequence) < slots:
        size = sorted(sizes)[below(len(sizes))]
        block = [code for code, r in ratios for _ in range(size // unit * r)]
        for i in range(len(block) - 1, 0, -1):
            j = below(i + 1)
            block[i], block[j] = block[j], block[i]
        drawn.append(size)
        sequence.extend(block)
    return drawn, sequence


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def sequences(path: Path) -> dict[tuple[str, ...], list[str]]:
    """Each stratum's arms in file order, from an allocation table."""
    out: dict[tuple[str, ...], list[str]] = {}
    for row in rows(path)[1:]:
        out.setdefault(tuple(row[1:]), []).append(row[0])
    return out


def splits_into_balanced_blocks(
    sequence: list[str], sizes: list[int], shares: dict[int, list[str]]
) -> bool:
    """Whether the sequence is a run of whole blocks, each of an allowed size holding every
    arm its share: a parse from the start, needing no block boundaries from the code."""
    reachable = {0}
    for start in range(len(sequence)):
        if start not in reachable:
            continue
        for size in sizes:
            block = Counter(sequence[start : start + size])
            if start + size <= len(sequence) and block == Counter(shares[size]):
                reachable.add(start + size)
    return len(sequence) in reachable


def test_the_stream_is_sha256_in_counter_mode() -> None:
    digest = hashlib.sha256(bytes(32) + b"\0site=1\0" + bytes(8)).digest()
    words = struct.unpack(">4Q", digest)
    stream = Stream(bytes(32), "site=1")
    assert [stream.below(6) for _ in range(4)] == [w % 6 for w in words]
    stream = Stream(bytes(32), "site=1")
    assert [stream.below(6) for _ in range(5)] == [0, 3, 1, 3, 3]


def test_the_tables_are_the_documented_algorithm(tmp_path: Path) -> None:
    write_tables(load_project("hekta"), tmp_path / "out", seed_file(tmp_path))
    for table, seed in (("development", DEV), ("production", PROD)):
        expected = ["rand_group,site"]
        for site in "123":
            _, arms = reference(seed, f"site={site}", [2, 4, 6], [("1", 1), ("2", 1)], 150)
            expected += [f"{arm},{site}" for arm in arms]
        written = (tmp_path / "out" / f"allocation_{table}.csv").read_bytes()
        assert written == ("\n".join(expected) + "\n").encode()


def test_a_seed_file_pins_the_tables_on_every_version(tmp_path: Path) -> None:
    """The SHA-256 of the tables for the literal seeds: a change of algorithm shows here."""
    write_tables(load_project("hekta"), tmp_path / "out", seed_file(tmp_path))
    digests = {
        name: hashlib.sha256((tmp_path / "out" / name).read_bytes()).hexdigest()
        for name in ("allocation_development.csv", "allocation_production.csv")
    }
    assert digests == {
        "allocation_development.csv": "7ac8008224ab5ed1389ac43e0f8196fa"
        "7cf6c23556284fdc4670a01c24b2509f",
        "allocation_production.csv": "ab861ddc4bed0f361b362aafb3a0d031"
        "8cb805edb9711e6610a1803fd0e88b72",
    }


def test_every_block_is_balanced_and_the_sizes_vary(tmp_path: Path) -> None:
    written = write_tables(load_project("hekta"), tmp_path / "out", seed_file(tmp_path))
    shares = {2: ["1", "2"], 4: ["1", "1", "2", "2"], 6: ["1"] * 3 + ["2"] * 3}
    all_sizes: Counter[int] = Counter()
    for table in ("development", "production"):
        found = sequences(tmp_path / "out" / f"allocation_{table}.csv")
        assert list(found) == [("1",), ("2",), ("3",)]
        for run in written.runs[table]:
            sequence = found[run.stratum]
            assert splits_into_balanced_blocks(sequence, [2, 4, 6], shares)
            start = 0
            for size in run.sizes:  # the drawn blocks, cut from the file
                assert Counter(sequence[start : start + size]) == Counter(shares[size])
                start += size
            assert start == len(sequence) >= 150
            assert len(sequence) < 150 + 6
            assert set(run.sizes) == {2, 4, 6}
            all_sizes.update(run.sizes)
    total = sum(all_sizes.values())
    for size in (2, 4, 6):  # uniform over the sizes: each about a third of the blocks
        assert 0.25 < all_sizes[size] / total < 0.42


def test_strata_and_tables_are_independent(tmp_path: Path) -> None:
    write_tables(load_project("hekta"), tmp_path / "out", seed_file(tmp_path))
    dev = sequences(tmp_path / "out" / "allocation_development.csv")
    prod = sequences(tmp_path / "out" / "allocation_production.csv")
    pairs = [(dev[("1",)], dev[("2",)]), (dev[("1",)], dev[("3",)]), (dev[("2",)], dev[("3",)])]
    pairs += [(dev[s], prod[s]) for s in dev]
    for a, b in pairs:
        assert a != b
        agree = sum(x == y for x, y in zip(a[:150], b[:150], strict=True))
        assert 50 <= agree <= 100  # independent balanced sequences agree about half the time


def test_changing_one_stratum_changes_only_its_sequence(library: Path, tmp_path: Path) -> None:
    write_tables(load_project("hekta", library), tmp_path / "a", seed_file(tmp_path))
    edit(library, "forms/consent.yaml", "{code: 3, label:", "{code: 4, label:")
    write_tables(load_project("hekta", library), tmp_path / "b", tmp_path / "seeds.txt")
    for table in ("development", "production"):
        before = sequences(tmp_path / "a" / f"allocation_{table}.csv")
        after = sequences(tmp_path / "b" / f"allocation_{table}.csv")
        assert list(after) == [("1",), ("2",), ("4",)]
        assert after[("1",)] == before[("1",)] and after[("2",)] == before[("2",)]
        assert after[("4",)] != before[("3",)]


def test_same_seed_file_same_files_another_seed_other_tables(tmp_path: Path) -> None:
    seeds = seed_file(tmp_path)
    for out in ("a", "b"):
        written = write_tables(load_project("hekta"), tmp_path / out, seeds)
        assert written.seeds_read
    for name in ("allocation_development.csv", "allocation_production.csv", "summary.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    a, b = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in "ab")
    assert {k: v for k, v in a.items() if k != "created"} == {
        k: v for k, v in b.items() if k != "created"
    }
    (tmp_path / "other").mkdir()
    write_tables(load_project("hekta"), tmp_path / "c", seed_file(tmp_path / "other", OTHER))
    assert (tmp_path / "c" / "allocation_development.csv").read_bytes() != (
        tmp_path / "a" / "allocation_development.csv"
    ).read_bytes()
    assert (tmp_path / "c" / "allocation_production.csv").read_bytes() == (
        tmp_path / "a" / "allocation_production.csv"
    ).read_bytes()  # only the development seed differs


def test_without_a_seed_file_every_run_draws_new_tables(tmp_path: Path) -> None:
    first = write_tables(load_project("hekta"), tmp_path / "a", None)
    write_tables(load_project("hekta"), tmp_path / "b", None)
    for name in ("allocation_development.csv", "allocation_production.csv"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()
    assert "cannot be regenerated" in first.text()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["method"]["seeds"] == "kept nowhere: not reproducible"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no seeds anywhere


def test_a_new_seed_file_is_owner_only_and_the_seeds_appear_nowhere_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seeds = tmp_path / "keep" / "seeds.txt"
    seeds.parent.mkdir()
    old = os.umask(0)  # even a permissive umask gives an owner-only file
    try:
        written = write_tables(load_project("hekta"), tmp_path / "out", seeds)
    finally:
        os.umask(old)
    assert stat.S_IMODE(seeds.stat().st_mode) == 0o600
    lines = seeds.read_text().splitlines()
    values = dict(line.split(" = ") for line in lines if not line.startswith("#"))
    assert values.keys() == {"version", "development", "production"}
    assert all(len(values[k]) == 64 and int(values[k], 16) >= 0 for k in values if k != "version")
    assert values["development"] != values["production"]
    shown = [written.text(), repr(written), caplog.text]
    shown += [p.read_text() for p in (tmp_path / "out").iterdir()]
    for seed in (values["development"], values["production"]):
        for text in shown:
            assert seed not in text and seed.upper() not in text
    assert "Seeds: written to" in written.text() and not written.seed_file_exposed


def test_a_readable_seed_file_is_warned_about(tmp_path: Path) -> None:
    seeds = seed_file(tmp_path)
    seeds.chmod(0o644)
    written = write_tables(load_project("hekta"), tmp_path / "out", seeds)
    assert f"\n  chmod 600 {seeds}\n" in written.text()


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (f"development = {DEV}\nproduction = {PROD}\n", None, "no 'version = ...' line"),
        (
            f"version = 1\ndevelopment = {DEV[:-1]}\nproduction = {PROD}\n",
            2,
            "the development seed is not 64 hex digits",
        ),
        (f"# c\nversion = 1\ndevelopment: {DEV}\n", 3, "expected 'version = 1'"),
        (f"version = 1\ndevelopment = {DEV}\ndevelopment = {PROD}\n", 3, "given twice"),
        (f"version = 2\ndevelopment = {DEV}\nproduction = {PROD}\n", 1, "version '2'"),
        (f"version = 1\ndevelopment = {DEV}\nproduction = {DEV}\n", 3, "are the same"),
        (f"version = 1\ndevelopment = {DEV}\n", None, "no 'production = ...' line"),
    ],
)
def test_a_malformed_seed_file_is_an_error_naming_file_and_line(
    tmp_path: Path, content: str, line: int | None, message: str
) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(content)
    with pytest.raises(HektaError, match=message) as caught:
        write_tables(load_project("hekta"), tmp_path / "out", seeds)
    assert caught.value.origin is not None
    assert (caught.value.origin.file, caught.value.origin.line) == (seeds, line)
    assert not (tmp_path / "out").exists()


def test_existing_tables_are_never_replaced(tmp_path: Path) -> None:
    write_tables(load_project("hekta"), tmp_path / "out", None)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    with pytest.raises(HektaError, match="never replaced") as caught:
        write_tables(load_project("hekta"), tmp_path / "out", tmp_path / "seeds.txt")
    assert caught.value.origin is not None
    assert caught.value.origin.file == tmp_path / "out" / "allocation_development.csv"
    assert not (tmp_path / "seeds.txt").exists()  # refused before any seed was drawn
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "manifest.json").write_text("{}")
    with pytest.raises(HektaError, match=r"manifest\.json: already exists"):
        write_tables(load_project("hekta"), tmp_path / "only", None)


def test_summary_and_manifest_match_the_tables(tmp_path: Path) -> None:
    write_tables(load_project("hekta"), tmp_path / "out", seed_file(tmp_path))
    out = tmp_path / "out"
    summary = rows(out / "summary.csv")
    assert summary[0] == [
        "table",
        "site",
        "blocks",
        "blocks_of_2",
        "blocks_of_4",
        "blocks_of_6",
        "slots",
        "arm_1",
        "arm_2",
        "largest_imbalance",
        "imbalance_at_planned",
    ]
    expected = []
    for table, seed in (("development", DEV), ("production", PROD)):
        for site, arms in sequences(out / f"allocation_{table}.csv").items():
            sizes, _ = reference(seed, f"site={site[0]}", [2, 4, 6], [("1", 1), ("2", 1)], 150)
            gaps = []
            for n in range(1, len(arms) + 1):
                gaps.append(abs(arms[:n].count("1") - arms[:n].count("2")))
            expected.append(
                [table, site[0], str(len(sizes))]
                + [str(sizes.count(s)) for s in (2, 4, 6)]
                + [str(len(arms)), str(arms.count("1")), str(arms.count("2"))]
                + [str(max(gaps)), str(gaps[99])]
            )
    assert summary[1:] == expected
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"] == {
        "target": "rand_group",
        "event": "baseline_arm_1",
        "arms": [{"code": "1", "ratio": 1}, {"code": "2", "ratio": 1}],
        "factors": [{"column": "site", "levels": ["1", "2", "3"]}],
        "block_sizes": [2, 4, 6],
        "planned_per_stratum": 100,
        "margin": 0.5,
        "slots_per_stratum": 150,
        "strata": 3,
    }
    for entry in manifest["tables"]:
        data = (out / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["rows"] == data.count(b"\n") - 1
    assert (
        manifest["summary"]["sha256"]
        == hashlib.sha256((out / "summary.csv").read_bytes()).hexdigest()
    )
    assert manifest["toolkit"]["name"] == "hekta-redcap"
    assert manifest["created"].endswith("+00:00")


def test_a_2_to_1_design_with_blocks_of_3_and_6(library: Path, tmp_path: Path) -> None:
    edit(library, "studies/hekta.yaml", "{code: 1, ratio: 1}", "{code: 1, ratio: 2}")
    edit(library, "studies/hekta.yaml", "blocks: [2, 4, 6]", "blocks: [6, 3]")
    written = write_tables(load_project("hekta", library), tmp_path / "out", seed_file(tmp_path))
    shares = {3: ["1", "1", "2"], 6: ["1"] * 4 + ["2"] * 2}
    summary = rows(tmp_path / "out" / "summary.csv")
    for table, seed in (("development", DEV), ("production", PROD)):
        found = sequences(tmp_path / "out" / f"allocation_{table}.csv")
        for site, arms in found.items():
            sizes, expected = reference(seed, f"site={site[0]}", [3, 6], [("1", 2), ("2", 1)], 150)
            assert arms == expected
            assert splits_into_balanced_blocks(arms, [3, 6], shares)
            assert arms.count("1") == 2 * arms.count("2")
            assert set(sizes) == {3, 6}
            spread = [
                abs(Fraction(arms[:n].count("1"), 2) - arms[:n].count("2"))
                for n in range(1, len(arms) + 1)
            ]
            line = next(r for r in summary if r[:2] == [table, site[0]])
            largest = max(spread)
            assert line[-2] == (
                str(largest) if largest.denominator == 1 else f"{float(largest):.2f}"
            )
    assert written.runs["development"][0].sizes[:1] in ([3], [6])
    assert "arm_1" in summary[0] and "blocks_of_3" in summary[0]


def test_two_factors_make_every_combination_a_stratum(library: Path, tmp_path: Path) -> None:
    edit(
        library,
        "studies/hekta.yaml",
        "    - {field: site}\n",
        "    - {field: site}\n    - {field: sex}\n",
    )
    write_tables(load_project("hekta", library), tmp_path / "out", seed_file(tmp_path))
    table = rows(tmp_path / "out" / "allocation_development.csv")
    assert table[0] == ["rand_group", "site", "sex"]
    found = sequences(tmp_path / "out" / "allocation_development.csv")
    assert list(found) == [(s, x) for s in "123" for x in "12"]
    _, expected = reference(DEV, "site=2,sex=1", [2, 4, 6], [("1", 1), ("2", 1)], 150)
    assert found[("2", "1")] == expected
    assert len({"".join(arms) for arms in found.values()}) == 6


def test_a_data_access_group_factor(library: Path, tmp_path: Path) -> None:
    edit(library, "studies/hekta.yaml", "    - {field: site}\n", "    - {dag: [oslo, bergen]}\n")
    write_tables(load_project("hekta", library), tmp_path / "out", seed_file(tmp_path))
    table = rows(tmp_path / "out" / "allocation_production.csv")
    assert table[0] == ["rand_group", "redcap_data_access_group"]
    found = sequences(tmp_path / "out" / "allocation_production.csv")
    assert list(found) == [("oslo",), ("bergen",)]
    _, expected = reference(
        PROD, "redcap_data_access_group=bergen", [2, 4, 6], [("1", 1), ("2", 1)], 150
    )
    assert found[("bergen",)] == expected


def test_read_table_gives_the_slots_and_names_file_line_and_column(tmp_path: Path) -> None:
    design = design_of(load_project("hekta"))
    written = write_tables(load_project("hekta"), tmp_path / "out", seed_file(tmp_path))
    path = tmp_path / "out" / "allocation_development.csv"
    slots = read_table(path, design)
    assert [(s.arm, s.stratum) for s in slots] == [(r[0], (r[1],)) for r in rows(path)[1:]]
    assert [s.line for s in slots[:3]] == [2, 3, 4]
    assert len(slots) == sum(len(run.arms) for run in written.runs["development"])
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("site,rand_group\n2,1\n")
    assert [(s.arm, s.stratum) for s in read_table(swapped, design)] == [("1", ("2",))]
    cases = {
        "rand_group,sex\n1,1\n": ":1: the header must be rand_group,site (the study file's "
        "randomization), not rand_group,sex",
        "rand_group,site\n1,1\n3,1\n": ":3: column rand_group: '3' is not one of 1, 2",
        "rand_group,site\n1,1\n\n1,9\n": ":4: column site: '9' is not one of 1, 2, 3",
        "rand_group,site\n1,1,1\n": ":2: 3 values where the header has 2",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(HektaError) as caught:
            read_table(bad, design)
        assert str(caught.value).endswith("bad.csv" + message)


def test_the_text_says_what_to_do_in_redcap(tmp_path: Path) -> None:
    written = write_tables(load_project("hekta"), tmp_path / "out", seed_file(tmp_path))
    text = written.text()
    assert "table        stratum  blocks  of 2  of 4  of 6  slots  arm 1  arm 2" in text
    assert "Seeds: read from" in text
    assert "use stratified randomization by site (event\n   baseline_arm_1)" in text
    assert "upload allocation_development.csv" in text
    assert "upload allocation_production.csv" in text
    assert (
        f"     hekta-redcap randomization audit --project hekta --table "
        f"{tmp_path / 'out' / 'allocation_development.csv'}"
    ) in text
    prose = [line for line in text.splitlines() if str(tmp_path) not in line]
    assert max(len(line) for line in prose) <= 96


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "hekta_redcap", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_the_command_end_to_end(tmp_path: Path) -> None:
    cwd = Path.cwd()
    first = run(
        "randomization",
        "table",
        "-p",
        "hekta",
        "-o",
        "tables",
        "--seed-file",
        str(tmp_path / "seeds.txt"),
        cwd=cwd,
    )
    assert first.returncode == 0, first.stderr
    assert "Wrote the allocation tables of hekta to tables:" in first.stdout
    assert sorted(p.name for p in (cwd / "tables").iterdir()) == [
        "allocation_development.csv",
        "allocation_production.csv",
        "manifest.json",
        "summary.csv",
    ]
    seeds = (tmp_path / "seeds.txt").read_text()
    for line in seeds.splitlines()[-2:]:
        hexdigits = line.split(" = ")[1]
        assert hexdigits not in first.stdout + first.stderr
    again = run("randomization", "table", "-p", "hekta", "-o", "tables", cwd=cwd)
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0
    assert again.stderr.startswith("error: tables/allocation_development.csv: already exists")
    (tmp_path / "bad.txt").write_text("version = 1\ndevelopment = 12\n")
    bad = run(
        "randomization",
        "table",
        "-p",
        "hekta",
        "-o",
        "other",
        "--seed-file",
        str(tmp_path / "bad.txt"),
        cwd=cwd,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert (
        bad.stderr
        == f"error: {tmp_path / 'bad.txt'}:2: the development seed is not 64 hex digits\n"
    )
    assert not (cwd / "other").exists()


def test_the_command_refuses_a_design_lint_refuses(library: Path, tmp_path: Path) -> None:
    edit(library, "studies/hekta.yaml", "blocks: [2, 4, 6]", "blocks: [3, 4]")
    where = line_of(library / "studies/hekta.yaml", "blocks: [3, 4]")
    result = run(
        "randomization",
        "table",
        "-p",
        "hekta",
        "-o",
        "out",
        "--definitions",
        str(library),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert f"hekta.yaml:{where}: error: block size 3 is not a multiple" in result.stderr
    assert not (tmp_path / "out").exists()
