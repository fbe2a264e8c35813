"""phi3ft.redact: the one place secrets leave text, and the places that must call it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from phi3ft import redact as redact_module
from phi3ft.errors import AzureError, Phi3ftError
from phi3ft.output import Output
from phi3ft.redact import MASK, redact, redact_data, register
from phi3ft.state import StateStore

SAS = (
    "se=2026-12-03T10%3A00%3A00Z&sp=rl&sv=2025-01-05&sr=c&skoid=11111111-2222&sktid=33333333-4444"
    "&skt=2026-12-03T09%3A00%3A00Z&ske=2026-12-03T10%3A00%3A00Z&sks=b&skv=2025-01-05"
    "&sig=AbCdEf0123456789%2BxYz%3D"
)
URL = f"https://acct.blob.core.windows.net/azureml/ExperimentRun/dcid.job/user_logs/std_log.txt?{SAS}"
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tIn0"
    ".c2lnbmF0dXJlLXBhcnQtb2YtdGhlLWp3dA"
)
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def test_sas_query_values_are_redacted_and_the_rest_kept() -> None:
    text = redact(f"404 Client Error: The specified blob does not exist. for url: {URL}")
    assert "AbCdEf0123456789" not in text
    for name in ("sig", "se", "skoid", "sktid", "skt", "ske", "sks", "skv", "sv"):
        assert f"{name}={MASK}" in text, name
    assert "sp=rl" in text and "sr=c" in text  # permissions and resource kind are not secrets
    assert text.startswith("404 Client Error: The specified blob does not exist. for url: https://acct.blob")


def test_sv_alone_is_kept() -> None:
    assert redact("https://x.blob.core.windows.net/c?restype=container&sv=2025-01-05") == (
        "https://x.blob.core.windows.net/c?restype=container&sv=2025-01-05"
    )


@pytest.mark.parametrize(
    "text",
    [
        "https://fn.azurewebsites.net/api/score?code=Zm9vYmFyYmF6cXV4MTIz&x=1",
        "https://ep.eastus2.models.ai.azure.com/v1/chat?key=abcdefgh12345678",
        "https://login.example/cb?access_token=abcdefgh12345678&state=1",
    ],
)
def test_code_and_key_in_query_strings(text: str) -> None:
    out = redact(text)
    assert MASK in out
    assert "Zm9vYmFyYmF6cXV4MTIz" not in out and "abcdefgh12345678" not in out


def test_bearer_jwt_account_key_headers_and_fields() -> None:
    cases = {
        f"Authorization: Bearer {JWT}": JWT,
        f"token {JWT} expired": JWT,
        "authorization: bearer opaque-token-value-123": "opaque-token-value-123",
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=core": ACCOUNT_KEY,
        "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0c2VjcmV0c2VjcmV0": "c2VjcmV0c2VjcmV0c2VjcmV0",
        "api-key: 0123456789abcdef0123456789abcdef": "0123456789abcdef0123456789abcdef",
        '{"primaryKey": "k3y-primary-value-1", "secondaryKey": "k3y-secondary-value-2"}': "k3y-",
        '{"accountKey": "abc123abc123abc123"}': "abc123abc123abc123",
        "{'client_secret': 'very-secret-value'}": "very-secret-value",
        f"Authorization: SharedKey acct:{ACCOUNT_KEY[:44]}": ACCOUNT_KEY[:44],
    }
    for text, secret in cases.items():
        out = redact(text)
        assert secret not in out, (text, out)
        assert MASK in out


def test_ordinary_text_is_untouched() -> None:
    for text in (
        "Job phi3ft-phi-4-mini-0123456789ab is Running (3 of 10 steps).",
        "hub-xbox-support exists (kind hub, eastus2); key vault kv-123 will be reused",
        "primary:   hidden (88 characters; --show prints it)",
        '{"primary_key": "hidden (88 characters; --show prints it)", "shown": false}',
        "Bearer tokens are never stored.",
        "learning_rate=0.00002 epochs=3",
        "https://management.azure.com/subscriptions/0000/resourceGroups/rg?api-version=2024-10-01",
    ):
        assert redact(text) == text


def test_registered_and_environment_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact_module, "_known", set())
    register("endpoint-key-0123456789", None, "short")
    assert redact("x endpoint-key-0123456789 y") == f"x {MASK} y"
    assert redact("short") == "short"  # too short to mask safely
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "phi3ft-client-secret-value")
    monkeypatch.setenv("PHI3FT_NOT_HIDDEN", "phi3ft-plain-value-123")
    assert redact("a phi3ft-client-secret-value b phi3ft-plain-value-123") == (
        f"a {MASK} b phi3ft-plain-value-123"
    )


def test_redact_data_walks_json() -> None:
    data = {"error": f"GET {URL} failed", "n": 3, "items": [f"Bearer {JWT}", None]}
    out = redact_data(data)
    assert "AbCdEf0123456789" not in json.dumps(out) and JWT not in json.dumps(out)
    assert out["n"] == 3 and out["items"][1] is None


# ---- the choke points -------------------------------------------------------------------------------
def test_every_phi3ft_error_is_redacted() -> None:
    exc = AzureError(f"Could not download log std_log.txt: 404 for url: {URL}", f"Open {URL} again")
    assert "sig=AbCd" not in exc.message and "sig=AbCd" not in (exc.hint or "")
    assert "sig=AbCd" not in str(exc)
    assert isinstance(exc, Phi3ftError)


def test_output_streams_are_redacted_and_keys_show_is_not() -> None:
    out_buf, err_buf = io.StringIO(), io.StringIO()
    out = Output(stdout=out_buf, stderr=err_buf, interactive=False)
    out.info(f"downloading {URL}")
    out.warn(f"token Bearer {JWT}")
    out.error(f"failed: {URL}", hint=f"AccountKey={ACCOUNT_KEY}")
    out.emit_json({"url": URL})
    out.print(f"table cell {URL}")
    out.stdout.write(f"raw log line {URL}\n")
    with out.unredacted():
        out.emit_json({"primary_key": "k3y-shown-on-purpose", "note": "explicitly asked"})
    out.emit_json({"after": URL})
    text = out_buf.getvalue() + err_buf.getvalue()
    assert "sig=AbCd" not in text and JWT not in text and ACCOUNT_KEY not in text
    assert "k3y-shown-on-purpose" in text
    assert text.count(MASK) >= 6


def test_ledger_never_stores_a_sas(tmp_path: Path) -> None:
    store = StateStore(tmp_path / ".phi3ft")
    store.record("job", "j1", error=f"log download failed: {URL}", token=f"Bearer {JWT}")
    raw = (tmp_path / ".phi3ft" / "state.json").read_text()
    assert "sig=AbCd" not in raw and JWT not in raw
    assert store.get("job", "j1")["error"].startswith("log download failed: https://acct.blob")  # type: ignore[index]


def test_logging_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    import phi3ft.cli.app  # noqa: F401 - the CLI installs the filter at import
    from phi3ft.redact import install_log_redaction

    install_log_redaction()  # idempotent
    assert sum(type(f).__name__ == "RedactingFilter" for f in logging.lastResort.filters) == 1  # type: ignore[union-attr]
    record = logging.getLogger("azure.test").makeRecord(
        "azure.test", logging.WARNING, __file__, 1, "GET %s failed", (URL,), None
    )
    logging.lastResort.handle(record)  # type: ignore[union-attr] # what prints when no handler is set
    err = capsys.readouterr().err
    assert "failed" in err and "sig=AbCd" not in err and f"sig={MASK}" in err


@pytest.mark.parametrize("debug", ["0", "1"])
def test_unexpected_error_and_debug_traceback_are_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, debug: str
) -> None:
    from phi3ft import config
    from phi3ft.cli.app import main

    def boom(*_args: object, **_kw: object) -> None:
        raise RuntimeError(f"GET {URL} returned 403 (Authorization: Bearer {JWT})")

    monkeypatch.setattr(config, "load_job_config", boom)
    monkeypatch.setenv("PHI3FT_DEBUG", debug)
    (tmp_path / "job.yaml").write_text("model: {name: phi-4-mini-instruct}\n")
    assert main(["plan", "--config", str(tmp_path / "job.yaml")]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError" in err
    if debug == "1":
        assert "Traceback (most recent call last)" in err
    assert "sig=AbCd" not in err and JWT not in err
    assert f"sig={MASK}" in err
