"""The one Azure error translation (``phi3ft.targets.azureml.sdk._core``): service codes -> exit code + fix."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from phi3ft.errors import AzureError, ExitCode, PrerequisiteError
from phi3ft.targets.azureml.sdk._core import (
    CONFLICT_FIX,
    QUOTA_FIX,
    REGION_FIX,
    ROLE_FIX,
    call,
    classify_http_error,
    service_error_codes,
)


class FakeResponse:
    """Just enough of an azure-core HTTP response for ``HttpResponseError(response=...)``."""

    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self.reason = "Error"
        self.headers = {"content-type": "application/json"}
        self.content_type = "application/json"
        self.request = None
        self._text = json.dumps(body) if not isinstance(body, str) else body

    def text(self, encoding: str | None = None) -> str:
        return self._text


def http_error(status: int, code: str, message: str, inner: str | None = None) -> HttpResponseError:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innerError"] = {"code": inner, "innerError": None}
    return HttpResponseError(response=FakeResponse(status, {"error": error}))


def raised(exc: BaseException) -> Any:
    def boom() -> None:
        raise exc

    with pytest.raises((AzureError, PrerequisiteError)) as info:
        call("create fine-tuning job 'j'", boom)
    return info.value


def test_inner_code_model_not_supported_by_maas_is_a_region_prerequisite() -> None:
    exc = http_error(
        400, "UserError", "Serverless FineTuning not supported in westus", "ModelNotSupportedByMaaS"
    )
    assert service_error_codes(exc) == ["UserError", "ModelNotSupportedByMaaS"]
    err = raised(exc)
    assert isinstance(err, PrerequisiteError) and err.exit_code == ExitCode.PREREQ
    assert err.message == (
        "Azure refused to create fine-tuning job 'j' (HTTP 400 UserError/ModelNotSupportedByMaaS): "
        "Serverless FineTuning not supported in westus"
    )
    assert err.hint == REGION_FIX and "azure.location" in err.hint


@pytest.mark.parametrize(
    ("status", "code", "inner", "message", "exit_code", "hint"),
    [
        (400, "UserError", None, "Serverless FineTuning not supported in westus3 region", 4, REGION_FIX),
        (409, "QuotaExceeded", None, "Subscription quota exceeded for fine-tuning jobs", 4, QUOTA_FIX),
        (400, "UserError", "InsufficientQuota", "Not enough quota for this job", 4, QUOTA_FIX),
        (403, "AuthorizationFailed", None, "The client does not have authorization", 4, ROLE_FIX),
        (400, "UserError", "LinkedAuthorizationFailed", "linked scope not authorized", 4, ROLE_FIX),
        (409, "Conflict", None, "The resource is being updated by another operation", 1, CONFLICT_FIX),
        (409, "UserError", "AnotherOperationInProgress", "Operation in progress", 1, CONFLICT_FIX),
    ],
)
def test_service_codes_map_to_exit_code_and_fix(
    status: int, code: str, inner: str | None, message: str, exit_code: int, hint: str
) -> None:
    err = raised(http_error(status, code, message, inner))
    assert int(err.exit_code) == exit_code
    assert err.hint == hint
    assert message in err.message


def test_missing_registration_in_an_inner_code_points_at_check_fix() -> None:
    err = raised(http_error(409, "UserError", "not registered", "MissingSubscriptionRegistration"))
    assert isinstance(err, PrerequisiteError) and "phi3ft check --fix" in (err.hint or "")


def test_unknown_codes_keep_exit_1_and_name_every_code() -> None:
    err = classify_http_error("do x", http_error(400, "UserError", "Bad thing", "SomethingNew"))
    assert isinstance(err, AzureError) and err.exit_code == ExitCode.ERROR
    assert "(HTTP 400 UserError/SomethingNew)" in err.message and err.hint is None


def test_a_body_that_is_not_json_still_classifies_by_status() -> None:
    exc = HttpResponseError(response=FakeResponse(403, "<html>Forbidden</html>"))
    assert service_error_codes(exc) == []
    assert raised(exc).hint == ROLE_FIX
