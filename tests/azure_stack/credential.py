"""Fake Entra ID tokens: an unsigned JWT with the claims azure-ai-ml and phi3ft read."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(*, aud: str, oid: str, tid: str, appid: str | None = None, ttl: int = 3600, **extra: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": aud,
        "iss": f"https://sts.windows.net/{tid}/",
        "iat": now,
        "nbf": now - 60,
        "exp": now + ttl,
        "oid": oid,
        "tid": tid,
        "sub": oid,
        "uti": uuid.uuid4().hex[:22],
        "ver": "1.0",
        **(
            {"appid": appid, "idtyp": "app"}
            if appid
            else {"upn": "dev@phi3ft.test", "name": "phi3ft developer"}
        ),
        **extra,
    }
    header = {"alg": "none", "typ": "JWT"}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.fake-signature"


def decode_jwt(token: str) -> dict[str, Any]:
    """Payload of a JWT, unverified (what the fake server and phi3ft both do)."""
    try:
        payload = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (IndexError, ValueError):
        return {}


def scope_to_aud(scope: str) -> str:
    # "https://ml.azure.com//.default" -> "https://ml.azure.com/" (compared literally by azure-ai-ml)
    return scope[: -len("/.default")] if scope.endswith("/.default") else scope


class FakeCredential:
    """A TokenCredential (``get_token`` and ``get_token_info``) minting unsigned JWTs.

    azure-ai-ml calls ``get_token`` directly in places, so both methods exist. Tokens live an hour,
    so azure-core caches them (one call serves many requests).
    """

    def __init__(self, *, oid: str, tenant_id: str, ttl: int = 3600) -> None:
        self.oid, self.tenant_id, self.ttl = oid, tenant_id, ttl
        self.calls: list[tuple[str, ...]] = []

    def _mint(self, scopes: tuple[str, ...], tenant_id: str | None) -> tuple[str, int]:
        self.calls.append(scopes)
        aud = scope_to_aud(scopes[0]) if scopes else "https://management.azure.com"
        token = make_jwt(aud=aud, oid=self.oid, tid=tenant_id or self.tenant_id, ttl=self.ttl)
        return token, int(time.time()) + self.ttl

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        token, exp = self._mint(scopes, tenant_id)
        return AccessToken(token, exp)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        tenant = (options or {}).get("tenant_id") if isinstance(options, dict) else None
        token, exp = self._mint(scopes, tenant)
        return AccessTokenInfo(token, exp, token_type="Bearer", refresh_on=None)

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
