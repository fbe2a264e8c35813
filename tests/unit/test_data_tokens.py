"""Token counts against reference ids, the chat-template vectors, and the additivity rule (b') == (b)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR, TOKENIZERS

from phi3ft.catalog import get_profile
from phi3ft.data.counting import ChunkCounter, constant_counts
from phi3ft.data.tokens import chat_format, count_conversation, encode_conversation, load_tokenizer

MINI = get_profile("phi-3-mini-4k-instruct")
ORTX = [
    {"role": "system", "content": "System message"},
    {"role": "user", "content": "Hello, can you call some tools for me?"},
    {"role": "assistant", "content": "Sure, I can calculate the sum for you!"},
]


@pytest.fixture(scope="module")
def phi3():  # type: ignore[no-untyped-def]
    return load_tokenizer(MINI, PHI3_TOKENIZER_DIR, {}).encoder


@pytest.fixture(scope="module")
def phi4mini():  # type: ignore[no-untyped-def]
    return load_tokenizer(get_profile("phi-4-mini-instruct"), TOKENIZERS / "phi4-mini", {}).encoder


def _llama_cases(folder: Path, stem: str) -> list[tuple[str, list[int]]]:
    inp = (folder / f"{stem}.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    out = (folder / f"{stem}.out").read_text(encoding="utf-8").split("\n")
    texts = inp[: len(out)]
    return [(t, [int(x) for x in o.split()]) for t, o in zip(texts, out, strict=False)]


def test_llama_cpp_reference_ids_phi3(phi3) -> None:  # type: ignore[no-untyped-def]
    cases = _llama_cases(TOKENIZERS / "phi3" / "llama.cpp", "ggml-vocab-phi-3.gguf")
    assert len(cases) >= 46
    got = phi3.encode_batch([t for t, _ in cases])
    assert sum(g == ids for g, (_, ids) in zip(got, cases, strict=True)) >= 46


def test_llama_cpp_reference_ids_phi4_mini(phi4mini) -> None:  # type: ignore[no-untyped-def]
    cases = _llama_cases(TOKENIZERS / "phi4-mini" / "llama.cpp", "ggml-vocab-gpt-4o.gguf")
    got = phi4mini.encode_batch([t for t, _ in cases])
    assert sum(g == ids for g, (_, ids) in zip(got, cases, strict=True)) >= 46


def test_chat_template_vectors(phi3) -> None:  # type: ignore[no-untyped-def]
    mini = phi3.encode_batch([chat_format("phi3").render(ORTX, add_generation_prompt=True)])[0]
    assert len(mini) == 29 and mini[:4] == [32006, 2184, 2643, 32007] and mini[-1] == 32001
    medium = encode_conversation(ORTX, chat_format("phi3-medium"), phi3).ids
    assert len(medium) == 24 and medium[0] == 32010 and medium[-1] == 32007


def test_worked_example_24_tokens(phi3) -> None:  # type: ignore[no-untyped-def]
    conv = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello world"},
        {"role": "assistant", "content": "Hi! How can I help you today?"},
    ]
    c = count_conversation(conv, chat_format("phi3"), phi3)
    assert c.total == 24 and c.per_role["user"] == 4
    assert count_conversation(conv, chat_format("phi3-original"), phi3).total == 16
    assert phi3.encode_batch(["Hello world"])[0] == [15043, 3186]


@pytest.mark.parametrize("folder", ["phi4-mini", "phi4"])
def test_phi4_reference_ids(folder: str) -> None:
    profile = get_profile("phi-4-mini-instruct" if folder == "phi4-mini" else "phi-4")
    enc = load_tokenizer(profile, TOKENIZERS / folder, {}).encoder
    for vec in json.loads((TOKENIZERS / folder / "reference_ids.json").read_text())["vectors"]:
        assert enc.encode_batch([vec["rendered_text"]])[0] == vec["ids"]
        if not vec.get("add_generation_prompt"):
            fmt = chat_format(profile.template)
            assert encode_conversation(vec["messages"], fmt, enc).ids == vec["ids"]


def _random_conversations(seed: int, n: int) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    pieces = [
        "Hello",
        "world",
        " ",
        "  ",
        "\n",
        "\n\n",
        "\t",
        "ünïcödé",
        "日本語",
        "code: x = 1",
        "<|end|>",
        "</s>",
        "<s>",
        "<|user|>",
        "Hi!",
        "?",
        "  leading",
        "trailing  ",
        "\r\n",
        "emoji 🙂",
        "<|im_end|>",
        "1234567",
    ]
    convs = []
    for _ in range(n):
        msgs = []
        if rng.random() < 0.7:
            msgs.append({"role": "system", "content": "".join(rng.choices(pieces, k=rng.randint(0, 6)))})
        for _ in range(rng.randint(1, 4)):
            for role in ("user", "assistant"):
                msgs.append({"role": role, "content": "".join(rng.choices(pieces, k=rng.randint(0, 8)))})
        convs.append(msgs)
    return convs


@pytest.mark.parametrize("template", ["phi3", "phi3-medium", "phi3-original", "phi4-mini"])
def test_chunk_sum_equals_full_encoding(template: str, phi3, phi4mini) -> None:  # type: ignore[no-untyped-def]
    """(b') == (b): encoding each message chunk once and summing equals encoding the rendered example."""
    enc = phi4mini if template == "phi4-mini" else phi3
    fmt = chat_format(template)
    convs = _random_conversations(hash(template) % 1000, 300)
    full = [len(ids) for ids in enc.encode_batch([fmt.render(c) for c in convs])]
    prefix, suffix, _ = constant_counts(fmt, enc)
    sums: list[int] = []
    counter = ChunkCounter(
        enc, lambda _ctx, counts: sums.append(prefix + sum(counts) + suffix), batch_records=37
    )
    for c in convs:
        counter.submit(None, [t for _, t in fmt.chunks(c)])
    counter.flush()
    assert sums == full
    assert counter.encoded_chunks < counter.seen_chunks  # repeated chunks were encoded once
    for c in convs[:50]:
        assert encode_conversation(c, fmt, enc).ids == enc.encode_batch([fmt.render(c)])[0]


def test_trainable_mask_marks_assistant_and_eos(phi3) -> None:  # type: ignore[no-untyped-def]
    conv = [
        {"role": "user", "content": "Hello world"},
        {"role": "assistant", "content": "Hi"},
        {"role": "user", "content": "More"},
        {"role": "assistant", "content": "No", "weight": 0},
    ]
    e = encode_conversation(conv, chat_format("phi3"), phi3)
    trained = [i for i, t in zip(e.ids, e.trainable, strict=True) if t]
    assert trained == phi3.encode_batch(["Hi<|end|>"])[0] + [32000]
    assert 32001 not in trained and len(e.ids) == len(e.trainable)


def test_hub_cache_resolution(tmp_path: Path) -> None:
    snap = tmp_path / "hub" / "models--microsoft--Phi-3-mini-4k-instruct" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "tokenizer.json").write_bytes((PHI3_TOKENIZER_DIR / "tokenizer.json").read_bytes())
    loaded = load_tokenizer(MINI, None, {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert loaded.origin == "hub-cache"
    loaded = load_tokenizer(MINI, None, {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"})
    assert loaded.origin == "hub-cache"


PHI3_SMALL_RANKS = TOKENIZERS / "phi3" / "phi-3-small" / "cl100k_base.tiktoken"


def test_phi3_small_counts() -> None:
    """cl100k ranks + Phi-3-small specials; 31 tokens for the worked example."""
    profile = get_profile("phi-3-small-8k-instruct")
    enc = load_tokenizer(profile, PHI3_SMALL_RANKS, {}).encoder
    assert enc.encode_batch(["This is a test."])[0] == [2028, 374, 264, 1296, 13]
    conv = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello world"},
        {"role": "assistant", "content": "Hi! How can I help you today?"},
    ]
    fmt = chat_format(profile.template)
    c = count_conversation(conv, fmt, enc)
    assert c.total == 31
    ids = encode_conversation(conv, fmt, enc).ids
    assert ids[0] == 100257 and ids[-1] == 100257 and 100263 in ids and ids.count(100266) == 3
    assert enc.encode_batch([fmt.render(conv)])[0] == ids  # chunk sum == whole rendering


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed once the block ends: connections are refused


def count_connects(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every TCP connection attempt of this process, by address (what huggingface_hub retries)."""
    import socket

    attempts: list[object] = []
    connect = socket.socket.connect

    def counting(self: socket.socket, address: object) -> None:
        attempts.append(address)
        connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", counting)
    return attempts


def test_download_fails_fast_with_the_real_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network (a closed loopback port as the hub): one connection attempt, and the reason says so.

    huggingface_hub alone makes 8 attempts (back-off 1, 2, 4, 8, 8 s) before it gives up.
    """
    from phi3ft.data.tokens import TokenizerUnavailable

    port = closed_port()
    attempts = count_connects(monkeypatch)
    env = {"HF_HOME": str(tmp_path), "HF_ENDPOINT": f"https://127.0.0.1:{port}"}
    with pytest.raises(TokenizerUnavailable) as err:
        load_tokenizer(MINI, None, env)
    assert attempts == [("127.0.0.1", port)]
    text = str(err.value)
    assert f"download failed: 127.0.0.1:{port} refused the connection" in text, text
    attempts.clear()
    with pytest.raises(TokenizerUnavailable, match="download skipped: HF_HUB_OFFLINE is set"):
        load_tokenizer(MINI, None, {**env, "HF_HUB_OFFLINE": "1"})
    assert attempts == []


def test_validate_without_network_says_why_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The T01 finding carries the reason and the commands that give an exact tokenizer."""
    from phi3ft.data.validate import validate_dataset

    port = closed_port()
    attempts = count_connects(monkeypatch)
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
            )
            + "\n"
            for i in range(12)
        ),
        encoding="utf-8",
    )
    proxy = f"http://user:s3cret@127.0.0.1:{port}"
    env = {"HF_HOME": str(tmp_path / "hf"), "HTTPS_PROXY": proxy}
    report = validate_dataset(train, model="phi-3-mini-4k-instruct", env=env)
    assert attempts == [("127.0.0.1", port)]  # the proxy, once
    (t01,) = [i for i in report.issues if i.rule == "T01"]
    assert f"download failed: the proxy http://127.0.0.1:{port} refused the connection" in t01.message
    assert "s3cret" not in t01.message
    assert "--tokenizer DIR" in t01.hint and "PHI3FT_TOKENIZER_DIR" in t01.hint
    assert "`hf download microsoft/Phi-3-mini-4k-instruct tokenizer.json tokenizer_config.json" in t01.hint


def _serve(handler_status: int, raw: bytes | None = None) -> tuple[int, object]:
    """A loopback server answering every request with ``handler_status`` (or sending ``raw`` bytes)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def run() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                reply = (
                    raw
                    or (
                        f"HTTP/1.1 {handler_status} X\r\nLocation: http://elsewhere.invalid/x\r\n"
                        "Content-Length: 0\r\nConnection: close\r\n\r\n"
                    ).encode()
                )
                conn.sendall(reply)

    threading.Thread(target=run, daemon=True).start()
    return int(server.getsockname()[1]), server


@pytest.mark.parametrize(
    ("status", "raw", "scheme", "expected"),
    [
        (302, None, "http", None),  # a redirect (LFS files): the hub answered, nothing followed
        (401, None, "http", None),  # gated: reachable, huggingface_hub reports the rest
        (503, None, "http", "answered HTTP 503"),
        (200, b"not TLS at all\r\n\r\n", "https", "TLS handshake with 127.0.0.1 failed"),
    ],
    ids=["redirect", "gated", "unavailable", "tls"],
)
def test_hub_probe_is_one_request_and_names_the_failure(
    monkeypatch: pytest.MonkeyPatch, status: int, raw: bytes | None, scheme: str, expected: str | None
) -> None:
    from phi3ft.hub import hub_unreachable

    port, server = _serve(status, raw)
    attempts = count_connects(monkeypatch)
    try:
        why = hub_unreachable(
            "microsoft/Phi-3-mini-4k-instruct",
            "tokenizer.json",
            {"HF_ENDPOINT": f"{scheme}://127.0.0.1:{port}"},
        )
    finally:
        server.close()  # type: ignore[attr-defined]
    assert attempts == [("127.0.0.1", port)]
    assert why is None if expected is None else expected in (why or ""), why


def test_hub_probe_names_a_dns_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from phi3ft.hub import hub_unreachable

    def no_dns(*_args: object, **_kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    why = hub_unreachable("microsoft/Phi-3-mini-4k-instruct", "tokenizer.json", {})
    assert why == "DNS lookup of huggingface.co failed: [Errno -2] Name or service not known"
    why = hub_unreachable("m/x", "f", {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "localhost"})
    assert (
        why == "DNS lookup of the proxy http://proxy.corp:3128 failed: [Errno -2] Name or service not known"
    )
