"""Hostile job.yaml input: every one is a one-line exit-3 error, never a hang, a traceback or code run.

Each case runs through the real ``phi3ft plan`` (in-process). The mutation sweep at the end takes
examples/job.yaml and breaks it at random (seeded), asserting every run exits 0 or 3.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import REPO

from phi3ft.config import MAX_CONFIG_BYTES, MAX_YAML_VALUES, load_job_config

RunCli = Callable[..., tuple[int, str, str]]
EXAMPLE = REPO / "examples" / "job.yaml"
ENV = {"PHI3FT_TODAY": "2026-11-25", "HF_HUB_OFFLINE": "1"}


def conversations(n: int) -> str:
    row = {
        "messages": [
            {"role": "user", "content": "My controller does not connect."},
            {"role": "assistant", "content": "Restart the console."},
        ]
    }
    return "".join(json.dumps(row) + "\n" for _ in range(n))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text(conversations(12), encoding="utf-8")
    (tmp_path / "data" / "validation.jsonl").write_text(conversations(3), encoding="utf-8")
    return tmp_path


def base_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
MERGE_LAUGHS = "".join(
    f"{name}: &{name} {{<<: [{', '.join([f'*{prev}'] * 9)}]}}\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)

#: name -> (how to make the text from examples/job.yaml, what the one error line must say).
HOSTILE: dict[str, tuple[Callable[[str], str], str]] = {
    "billion laughs": (
        lambda t: "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + LAUGHS,
        "aliases expand to more than",
    ),
    "billion laughs via merge keys": (
        lambda t: "a: &a {x: 1, y: 2}\n" + MERGE_LAUGHS,
        "aliases expand to more than",
    ),
    "400,000-item list": (lambda t: t + "big: [" + "1," * 400_000 + "1]\n", "more than 10,000 values"),
    "2,000-deep block sequences": (
        lambda t: t + "deep:\n" + "- " * 2000 + "x\n",
        "nested deeper than 64 levels",
    ),
    "!custom tag": (
        lambda t: t.replace("version: latest", "version: !custom latest"),
        "tag !custom is not allowed",
    ),
    "!!python/name": (
        lambda t: t.replace("version: latest", "version: !!python/name:os.system"),
        "tag !!python/name:os.system is not allowed",
    ),
    "!!python/module": (
        lambda t: t.replace("version: latest", "version: !!python/module:os"),
        "tag !!python/module:os is not allowed",
    ),
    "!!python tag on a key": (lambda t: "!!python/name:os.system x: 1\n" + t, "is not allowed"),
    "!!binary": (lambda t: t.replace("version: latest", "version: !!binary aGVsbG8="), "tag !!binary"),
    "recursive alias": (lambda t: "a: &a [*a]\n" + t, "recursive alias"),
    "recursive merge": (lambda t: "a: &a {<<: *a}\n" + t, "recursive alias"),
    "2,000-deep nesting": (
        lambda t: t + "deep: " + "[" * 2000 + "]" * 2000 + "\n",
        "nested deeper than 64 levels",
    ),
    "2,000-deep flow mappings": (
        lambda t: t + "deep: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n",
        "deeper than 64",
    ),
    "200-deep block mappings": (
        lambda t: t + "".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "v: 1\n",
        "nested deeper than 64 levels",
    ),
    "NUL byte": (lambda t: t.replace("version: latest", "version: lat\x00est"), "a NUL byte is not allowed"),
    "escaped NUL in a path": (
        lambda t: t.replace("train: data/train.jsonl", 'train: "data/tr\\0ain.jsonl"'),
        "cannot contain a NUL character",
    ),
    "4,300-digit integer": (
        lambda t: t.replace("epochs: 3", "epochs: " + "9" * 4300),
        "4,300 digits is out of range",
    ),
    "4,301-digit integer": (
        lambda t: t.replace("epochs: 3", "epochs: " + "9" * 4301),
        "4,301 digits is out of range",
    ),
    "25-digit integer": (lambda t: t.replace("epochs: 3", "epochs: " + "9" * 25), "is out of range (64-bit)"),
    "256-byte file name": (
        lambda t: t.replace("data/train.jsonl", "data/" + "a" * 250 + ".jsonl"),
        "a file name in this path is 256 bytes long",
    ),
    "256-byte eval file name": (
        lambda t: t.replace("eval:\n", "eval:\n  data: data/" + "b" * 256 + "\n"),
        "a file name in this path is 256 bytes long",
    ),
    "<<: [1, 2]": (lambda t: "x:\n  <<: [1, 2]\n" + t, "'<<' takes a mapping or a list of mappings"),
    "<<: scalar": (lambda t: "x:\n  <<: 1\n" + t, "'<<' takes a mapping"),
    "mapping as a key": (lambda t: "? {a: 1}\n: 2\n" + t, "a key must be a plain string"),
    "control character": (lambda t: t.replace("version: latest", "version: lat\x07est"), "U+0007"),
}


def one_error_line(err: str) -> str:
    errors = [row for row in err.splitlines() if row.startswith("Error: ")]
    assert len(errors) == 1, err
    assert "Unexpected error" not in err and "Traceback" not in err
    assert "Hint: " in err
    return errors[0]


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_config_is_one_line_exit_3(run_cli: RunCli, folder: Path, case: str) -> None:
    make, expected = HOSTILE[case]
    path = folder / "job.yaml"
    path.write_text(make(base_text()), encoding="utf-8")
    code, out, err = run_cli("plan", "--config", str(path), env=ENV)
    assert code == 3, err
    line = one_error_line(err)
    assert expected in line
    assert f"{path}:" in line  # the file, and a line number where YAML can give one
    assert out == ""


def test_billion_laughs_stops_at_the_value_budget(folder: Path) -> None:
    """The walk stops after MAX_YAML_VALUES values, not after 9**9 (a count, not a timing)."""
    from phi3ft import config

    built = 0
    original = config._BoundedLoader.construct_object

    def counting(self: object, node: object, deep: bool = False) -> object:
        nonlocal built
        built += 1
        return original(self, node, deep)  # type: ignore[arg-type]

    path = folder / "job.yaml"
    path.write_text("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + LAUGHS, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config._BoundedLoader, "construct_object", counting)
        with pytest.raises(config.JobConfigError, match="aliases expand to more than"):
            load_job_config(path, env={})
    assert built <= MAX_YAML_VALUES


def test_anchors_and_merge_keys_still_work(folder: Path) -> None:
    text = base_text().replace(
        "eval:\n  max_tokens: 300\n  concurrency: 4\n",
        "eval:\n  <<: &eval_defaults {max_tokens: 300, concurrency: 2}\n  concurrency: 4\n",
    )
    text = text.replace("tags:\n  project: xbox-support\n", "tags:\n  project: &p xbox-support\n  team: *p\n")
    path = folder / "job.yaml"
    path.write_text(text, encoding="utf-8")
    cfg = load_job_config(path, env={})
    assert (cfg.eval.max_tokens, cfg.eval.concurrency) == (300, 4)  # explicit keys beat merged ones
    assert cfg.tags["team"] == "xbox-support"


@pytest.mark.parametrize(
    "tagged",
    [
        "x: !!python/object/apply:os.system ['touch {marker}']\n",
        "x: !!python/object/apply:os.system {{args: ['touch {marker}']}}\n",
        "x: !!python/object/new:os.system ['touch {marker}']\n",
        "x: !!python/object/apply:subprocess.check_call [['touch', '{marker}']]\n",
        "model: {{name: !!python/object/apply:os.system ['touch {marker}']}}\n",
        "x: &a !!python/object/apply:os.system ['touch {marker}']\ny: *a\n",
    ],
)
def test_no_python_tag_runs_code(run_cli: RunCli, folder: Path, tagged: str) -> None:
    marker = folder / "MARKER"
    path = folder / "job.yaml"
    path.write_text(tagged.format(marker=marker) + base_text(), encoding="utf-8")
    code, _out, err = run_cli("plan", "--config", str(path), env=ENV)
    assert code == 3, err
    assert "is not allowed" in one_error_line(err)
    assert not marker.exists()


# ---- files that are not a job.yaml, refused before reading ---------------------------------------------
def test_dev_zero_is_refused_before_reading(run_cli: RunCli) -> None:
    code, _out, err = run_cli("plan", "--config", "/dev/zero", env=ENV)
    assert code == 3
    assert "is not a regular file" in one_error_line(err)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_blocking(run_cli: RunCli, tmp_path: Path) -> None:
    fifo = tmp_path / "job.yaml"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes: never opened
    code, _out, err = run_cli("plan", "--config", str(fifo), env=ENV)
    assert code == 3
    assert "is not a regular file" in one_error_line(err)


def test_file_over_1_mb_is_refused(run_cli: RunCli, folder: Path) -> None:
    path = folder / "job.yaml"
    path.write_text(base_text() + "#" * MAX_CONFIG_BYTES + "\n", encoding="utf-8")
    code, _out, err = run_cli("plan", "--config", str(path), env=ENV)
    assert code == 3
    assert "a job.yaml is at most 1 MB" in one_error_line(err)


def test_not_utf8_names_the_line(run_cli: RunCli, folder: Path) -> None:
    path = folder / "job.yaml"
    path.write_bytes(base_text().replace("version: latest", "version: lat\xffest").encode("latin-1"))
    code, _out, err = run_cli("plan", "--config", str(path), env=ENV)
    assert code == 3
    assert f"{path}:23: not valid UTF-8" in one_error_line(err)


# ---- ${VAR} values are never echoed ---------------------------------------------------------------------
SECRET = "s3cr3t~Q8vZ.client-secret-value"


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            "${AZURE_SUBSCRIPTION_ID:-00000000-0000-0000-0000-000000000000}",
            "${AZURE_CLIENT_SECRET}",
            "subscription_id",
        ),
        ("hub-xbox-support", "${AZURE_CLIENT_SECRET}", "hub -> name"),
        ("phi-4-mini-instruct  #", "${AZURE_CLIENT_SECRET}  #", "model -> name"),
        ("learning_rate: 2.0e-5", "learning_rate: ${AZURE_CLIENT_SECRET}", "learning_rate"),
        ("auth: auto", "auth: ${AZURE_CLIENT_SECRET}", "auth"),
        ("epochs: 3", "epochs: ${PHI3FT_EPOCHS}", "epochs"),
        ("rg-xbox-support", "rg-${MY_TOKEN}-x/", "resource_group"),
    ],
)
def test_expanded_values_are_never_echoed(
    run_cli: RunCli, folder: Path, old: str, new: str, where: str
) -> None:
    text = base_text()
    assert old in text
    path = folder / "job.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    env = {**ENV, "AZURE_CLIENT_SECRET": SECRET, "PHI3FT_EPOCHS": "-77777", "MY_TOKEN": SECRET}
    code, out, err = run_cli("plan", "--config", str(path), "--json", env=env)
    assert code == 3, err
    line = one_error_line(err)
    assert where in line
    assert "; value not shown)" in line
    assert SECRET not in out + err
    assert "77777" not in out + err


def test_literal_values_and_defaults_are_still_echoed(run_cli: RunCli, folder: Path) -> None:
    """What the user wrote in the file (a literal, or the default of ${VAR:-default}) may be shown."""
    path = folder / "job.yaml"
    path.write_text(
        base_text().replace("auth: auto", "auth: ${PHI3FT_UNSET_AUTH:-sometimes}"), encoding="utf-8"
    )
    code, _out, err = run_cli("plan", "--config", str(path), env=ENV)
    assert code == 3
    assert "(got 'sometimes')" in one_error_line(err)


# ---- mutation sweep ---------------------------------------------------------------------------------------
_TOKENS = [
    "&a ",
    "*a",
    "!!python/name:os.system ",
    "!x ",
    "<<: ",
    "[",
    "]",
    "{",
    "}",
    ": ",
    "- ",
    "\t",
    "? ",
    "\x00",
    "\x07",
    "'",
    '"',
    "${",
    "${X}",
    "$${",
    "%",
    "@",
    "`",
    "|",
    ">",
    "#",
    "---\n",
    "...\n",
    "\ufeff",
    "9" * 40,
    "1e999",
    ".nan",
    "~",
    "yes",
    "0x1F",
    "2026-01-01",
    "\r",
    "\\0",
    "&b [*b]",
    "\u2028",
]


def mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(6)
        i = rng.randrange(len(lines))
        if kind == 0 and len(lines) > 1:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif kind == 2:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == 3 and lines[i]:
            k = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:k] + chr(rng.randrange(1, 256)) + lines[i][k + 1 :]
        elif kind == 4:
            k = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:k] + rng.choice(_TOKENS) + lines[i][k:]
        else:
            lines[i] = " " * rng.randrange(4) + lines[i].lstrip()
    return "".join(lines)


def sweep(run_cli: RunCli, folder: Path, count: int, seed: int) -> dict[int, int]:
    rng = random.Random(seed)
    text = base_text()
    codes: dict[int, int] = {}
    path = folder / "job.yaml"
    for n in range(count):
        mutated = mutate(text, rng)
        path.write_bytes(mutated.encode("utf-8", "surrogatepass"))
        code, _out, err = run_cli("plan", "--config", str(path), env=ENV)
        codes[code] = codes.get(code, 0) + 1
        assert code in (0, 3), f"mutation {n} (seed {seed}) exited {code}:\n{err}\n--- config ---\n{mutated}"
        assert "Unexpected error" not in err and "Traceback" not in err
    return codes


def test_mutation_sweep_exits_0_or_3(run_cli: RunCli, folder: Path) -> None:
    codes = sweep(run_cli, folder, count=100, seed=20)
    assert sum(codes.values()) == 100
    assert set(codes) <= {0, 3}
    assert codes.get(3, 0) > 0  # the mutations do break the file


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_mutation_sweep_large(run_cli: RunCli, folder: Path, seed: int) -> None:
    """5 x 200 more mutations; ``-m slow`` (the issue's closing figures come from this one)."""
    codes = sweep(run_cli, folder, count=200, seed=seed)
    print(f"seed {seed}: exit codes {dict(sorted(codes.items()))}")
    assert set(codes) <= {0, 3}
