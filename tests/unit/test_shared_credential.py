"""One credential per process, tokens remembered in memory only (targets/azureml/sdk/credentials.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError

from phi3ft.errors import PrerequisiteError
from phi3ft.targets.azureml.sdk import credentials
from phi3ft.targets.azureml.sdk.credentials import SharedCredential

SCOPE = "https://management.azure.com/.default"


class Inner:
    """A credential that counts what it was asked."""

    def __init__(self, lifetime: int = 3600, fail: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.lifetime = lifetime
        self.fail = fail
        self.now = 1_000_000

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls.append(("get_token", kwargs.get("claims")))
        if self.fail:
            raise ClientAuthenticationError("AADSTS7000215: Invalid client secret provided.")
        return AccessToken(f"tok{len(self.calls)}", self.now + self.lifetime)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.calls.append(("get_token_info", (options or {}).get("claims")))
        return AccessTokenInfo(f"tok{len(self.calls)}", self.now + self.lifetime)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    credentials.reset_shared_credentials()
    yield
    credentials.reset_shared_credentials()


def test_every_client_shares_one_token_whichever_method_it_calls() -> None:
    inner = Inner()
    cred = SharedCredential(inner, "env", clock=lambda: inner.now)
    first = cred.get_token(SCOPE)
    assert cred.get_token(SCOPE).token == first.token
    assert cred.get_token_info(SCOPE).token == first.token
    assert len(inner.calls) == 1
    assert cred.report.tokens_requested == 3 and cred.report.tokens_fetched == 1
    assert cred.report.credential == "Inner" and cred.report.seconds is not None


def test_a_token_near_expiry_or_a_claims_challenge_goes_to_the_credential() -> None:
    inner = Inner(lifetime=600)
    clock = [inner.now]
    cred = SharedCredential(inner, "env", clock=lambda: clock[0])
    cred.get_token(SCOPE)
    clock[0] += 301  # inside the five-minute refresh margin
    cred.get_token(SCOPE)
    cred.get_token_info(SCOPE, options={"claims": '{"access_token": {}}'})
    assert [c[0] for c in inner.calls] == ["get_token", "get_token", "get_token_info"]


def test_failures_are_not_remembered_and_say_why() -> None:
    inner = Inner(fail=True)
    cred = SharedCredential(inner, "env")
    for _ in range(2):
        with pytest.raises(ClientAuthenticationError):
            cred.get_token(SCOPE)
    assert len(inner.calls) == 2
    assert cred.report.error and "AADSTS7000215" in cred.report.error


def test_the_chain_member_that_answered_is_reported() -> None:
    class Env(Inner):
        pass

    class Chain(Inner):
        _successful_credential = Env()

    cred = SharedCredential(Chain(), "auto")
    cred.get_token(SCOPE)
    assert cred.report.credential == "Env"
    assert type(cred._successful_credential).__name__ == "Env"  # AzureSession.identity() reads it


def test_one_credential_per_process_and_auth_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", "t")
    monkeypatch.setenv("AZURE_CLIENT_ID", "c")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s")
    a = credentials.shared_credential("env")
    assert credentials.shared_credential("env") is a
    assert type(a.inner).__name__ == "EnvironmentCredential"  # --auth env: that credential, no chain
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "other")  # another principal: another credential
    assert credentials.shared_credential("env") is not a
    assert credentials.BUILT == ["env", "env"]


def test_backends_of_one_process_share_the_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    from phi3ft.targets.azureml.sdk.backend import AzureMLBackend

    monkeypatch.setenv("AZURE_TENANT_ID", "t")
    monkeypatch.setenv("AZURE_CLIENT_ID", "c")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s")
    one = AzureMLBackend.connect(subscription_id="s", resource_group="rg", project="p", auth="env")
    two = AzureMLBackend.connect(subscription_id="s", resource_group="rg", project="q", auth="env")
    assert one.session.credential is two.session.credential
    assert credentials.BUILT == ["env"]


def test_probe_credential_reports_or_translates(monkeypatch: pytest.MonkeyPatch) -> None:
    inner = Inner()
    monkeypatch.setattr(
        credentials, "_SHARED", {("env", credentials._env_key()): SharedCredential(inner, "env")}
    )
    report = credentials.probe_credential("env")
    assert report.credential == "Inner" and report.tokens_fetched == 1
    assert credentials.credential_report()[0]["credential"] == "Inner"

    monkeypatch.setattr(
        credentials, "_SHARED", {("env", credentials._env_key()): SharedCredential(Inner(fail=True), "env")}
    )
    with pytest.raises(PrerequisiteError) as info:
        credentials.probe_credential("env")
    assert "Azure authentication failed while trying to obtain an Azure token" in info.value.message
