"""`phi3ft doctor` findings that need no Azure (the Azure ones run on the offline stack in
tests/e2e/test_screen_stack.py): old Python, a missing SDK, proxy credentials never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from phi3ft.cli import doctor


def test_old_python_is_a_missing_prerequisite() -> None:
    finding = doctor.python_finding((3, 9, 18))
    assert finding.status == "fail" and "3.10" in finding.detail
    assert finding.fix and "Python 3.10+" in finding.fix
    assert doctor.python_finding((3, 11, 7)).status == "ok"


def test_missing_sdk_package_fails_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = doctor._dist_version
    monkeypatch.setattr(doctor, "_dist_version", lambda name: None if name == "azure-ai-ml" else real(name))
    sdk = next(f for f in doctor.versions_findings() if f.id == "sdk")
    assert sdk.status == "fail" and "azure-ai-ml missing" in sdk.detail
    assert sdk.fix == "Install them: python3 -m pip install azure-ai-ml (they come with phi3ft itself)"


def test_proxy_password_is_never_shown() -> None:
    found = doctor.network_findings(
        {"HTTPS_PROXY": "http://me:s3cret@proxy.corp:3128", "NO_PROXY": "localhost"}
    )
    proxy = next(f for f in found if f.id == "proxy")
    assert "s3cret" not in proxy.detail and "http://proxy.corp:3128" in proxy.detail
    assert "NO_PROXY=localhost" in proxy.detail


def test_doctor_exit_4_and_json_on_a_missing_ca_bundle(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    code, out, _ = run_cli(
        "doctor",
        "--offline",
        "--json",
        "-m",
        "phi-4-mini-instruct",
        env={"REQUESTS_CA_BUNDLE": str(tmp_path / "x.pem")},
    )
    assert code == 4
    doc = json.loads(out)
    assert doc["ok"] is False and doc["exit_code"] == 4
    assert [f["id"] for f in doc["findings"] if f["status"] == "fail"] == ["ca:REQUESTS_CA_BUNDLE"]


def test_a_native_package_that_does_not_import_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "NATIVE_PACKAGES", ("orjson", "phi3ft_no_such_native_module"))
    finding = doctor.speedups_finding({})
    assert finding.status == "fail" and "phi3ft_no_such_native_module" in finding.detail
    assert (
        finding.fix == "Reinstall them: python3 -m pip install --force-reinstall phi3ft_no_such_native_module"
    )
