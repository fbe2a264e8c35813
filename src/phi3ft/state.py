"""The local ledger: what phi3ft created, recorded the moment it exists.

A crash between two steps loses nothing: every write is atomic (temp file in the same folder, fsync,
``os.replace``) and guarded by an advisory lock so two phi3ft processes in one folder do not interleave.
Reads are lenient: unknown fields from older/newer phi3ft versions are kept, and a corrupt file is set
aside (never silently overwritten) with a warning.

Leaf module: stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from phi3ft.redact import redact_data

try:  # POSIX advisory locks; on Windows the lock is a no-op (single-user tool).
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

STATE_VERSION = 1
STATE_FILE = "state.json"

#: Resource kinds, in the order teardown must delete them (endpoints first, hub last).
KINDS = ("job", "endpoint", "model", "data", "compute", "project", "hub")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StateStore:
    """Ledger at ``<state_dir>/state.json``: ``{"version", "resources": {kind: {key: record}}, "last_job"}``.

    A record is a free-form dict; phi3ft always sets ``name``, ``created_at`` and ``created_by_phi3ft``
    (False for resources that existed before and were only reused, so ``delete`` leaves them alone).
    """

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / STATE_FILE
        self.warnings: list[str] = []

    # ---- reading -------------------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        if not self.path.exists():
            return self._empty()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as exc:
            aside = self.path.with_name(f"{STATE_FILE}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            self.warnings.append(
                f"The local state file was unreadable ({exc}); it was moved to {aside} and a new one started."
            )
            return self._empty()
        data.setdefault("version", STATE_VERSION)
        resources = data.get("resources")
        if not isinstance(resources, dict):
            data["resources"] = {}
        for kind, records in list(data["resources"].items()):
            if not isinstance(records, dict):
                data["resources"][kind] = {}
        return data

    @staticmethod
    def _empty() -> dict[str, Any]:
        return {"version": STATE_VERSION, "resources": {}, "last_job": None}

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        record = self.load()["resources"].get(kind, {}).get(key)
        return dict(record) if isinstance(record, dict) else None

    def list(self, kind: str) -> list[dict[str, Any]]:
        records = self.load()["resources"].get(kind, {})
        return [dict(r) for r in records.values() if isinstance(r, dict)]

    @property
    def last_job(self) -> str | None:
        value = self.load().get("last_job")
        return value if isinstance(value, str) else None

    # ---- writing -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.dir / ".lock"
        with open(lock_path, "a+") as lock:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                data = self.load()
                yield data
                self._write(data)
            finally:
                if fcntl is not None:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(redact_data(data), fh, indent=2, sort_keys=True)  # no SAS/key in the ledger
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def record(self, kind: str, key: str, **fields: Any) -> dict[str, Any]:
        """Create or update one record (fields are merged); returns the stored record."""
        with self._locked() as data:
            bucket = data["resources"].setdefault(kind, {})
            current = bucket.get(key) if isinstance(bucket.get(key), dict) else {}
            merged = {**current, **fields}
            merged.setdefault("name", key)
            merged.setdefault("created_at", utc_now())
            merged["updated_at"] = utc_now()
            bucket[key] = merged
            if kind == "job":
                data["last_job"] = key
            return dict(merged)

    def record_resource(self, kind: str, key: str, *, created: bool, **fields: Any) -> dict[str, Any]:
        """Record a resource that was either created now or found and reused.

        ``created_by_phi3ft`` is sticky: once phi3ft created something, a later run that reuses it does
        not turn it into "existed before" (so ``delete`` still cleans it up).
        """
        was_ours = bool((self.get(kind, key) or {}).get("created_by_phi3ft", False))
        return self.record(kind, key, **fields, created_by_phi3ft=bool(created or was_ours))

    def remove(self, kind: str, key: str) -> None:
        with self._locked() as data:
            data["resources"].get(kind, {}).pop(key, None)
            if kind == "job" and data.get("last_job") == key:
                data["last_job"] = None

    def set_last_job(self, key: str) -> None:
        with self._locked() as data:
            data["last_job"] = key
