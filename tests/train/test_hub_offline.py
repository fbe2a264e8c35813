"""Hub look-ups of the trainer fail at once offline, with the real reason and the fix (issue 19 item 3).

A closed loopback port stands in for the hub; what is asserted is the number of connection attempts
(transformers alone makes 18 for a model and 19 for a tokenizer, with back-off 1, 2, 4, 8, 8 s) and the
message, never the wall time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR
from tests.train.conftest import TRAIN_FILE
from tests.unit.test_data_tokens import closed_port, count_connects

REPO_ID = "microsoft/Phi-3-mini-4k-instruct"


@pytest.fixture
def no_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[object]]:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    port = closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return port, count_connects(monkeypatch)


def train_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["train", "--train-file", str(TRAIN_FILE), "--model", "phi-3-mini-4k-instruct",
            "--output-dir", str(tmp_path / "out"), "--device", "cpu", "--max-steps", "1", *extra]  # fmt: skip


def test_tokenizer_look_up_makes_one_attempt(run_cli, tmp_path: Path, no_hub) -> None:  # type: ignore[no-untyped-def]
    port, attempts = no_hub
    code, _out, err = run_cli(*train_args(tmp_path))
    assert code == 4, err
    assert attempts == [("127.0.0.1", port)]
    flat = " ".join(err.split())
    assert (
        f"cannot get tokenizer.json for {REPO_ID}: 127.0.0.1:{port} refused the connection "
        "([Errno 111] Connection refused), and the hub cache"
    ) in flat
    assert f"`hf download {REPO_ID} --local-dir DIR`" in flat and "--tokenizer DIR" in flat
    assert "Traceback" not in err and "Retrying" not in err


def test_model_look_up_makes_one_attempt(run_cli, tmp_path: Path, no_hub) -> None:  # type: ignore[no-untyped-def]
    port, attempts = no_hub
    code, _out, err = run_cli(*train_args(tmp_path, "--tokenizer", str(PHI3_TOKENIZER_DIR)))
    assert code == 4, err
    assert attempts == [("127.0.0.1", port)]
    flat = " ".join(err.split())
    assert f"cannot load base model {REPO_ID}: 127.0.0.1:{port} refused the connection" in flat
    assert "and the hub cache" in flat and "has no copy" in flat
    assert "training.base_model: DIR (or --base-model DIR)" in flat


def test_hf_hub_offline_makes_no_attempt(  # type: ignore[no-untyped-def]
    run_cli, tmp_path: Path, no_hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    _port, attempts = no_hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for extra in ([], ["--tokenizer", str(PHI3_TOKENIZER_DIR)]):
        code, _out, err = run_cli(*train_args(tmp_path, *extra))
        assert code == 4, err
        flat = " ".join(err.split())
        assert "HF_HUB_OFFLINE is set, and the hub cache" in flat
        assert "unset HF_HUB_OFFLINE" in flat
    assert attempts == []


def test_unreachable_hub_uses_the_cached_tokenizer(tmp_path: Path, no_hub) -> None:  # type: ignore[no-untyped-def]
    from phi3ft.train.trainer import _hub_tokenizer

    port, attempts = no_hub
    repo = tmp_path / "hf" / "hub" / ("models--" + REPO_ID.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    shutil.copy(PHI3_TOKENIZER_DIR / "tokenizer.json", snapshot / "tokenizer.json")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    assert _hub_tokenizer(REPO_ID) == snapshot / "tokenizer.json"
    assert attempts == [("127.0.0.1", port)]
