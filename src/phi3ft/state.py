"""The local ledger: what phi3ft created, recorded the moment it exists.

A crash between two steps loses nothing: every write is atomic (temp file in the same folder, fsync,
``os.replace``) and guarded by an advisory lock so two phi3ft processes in one folder do not interleave.
Reads are lenient: unknown fields from older/newer phi3ft versions are kept, and a corrupt file is set
aside (never silently overwritten) with a warning.

Ownership survives any kill: before each create call phi3ft records an *intent*
(:meth:`StateStore.intent`: kind, name, a random ``creation_id``, ``status: "creating"``) and tags the
resource with that id (:data:`CREATION_TAG`). A later run that finds the resource carrying an id this
ledger recorded knows phi3ft created it (:meth:`StateStore.record_resource` with ``tags=``), whatever step
the killed run had reached.

Two runs in one folder: the phases of ``submit``/``deploy``/``delete`` that create or delete hold
:meth:`StateStore.run_lock` (an exclusive ``flock`` on ``.phi3ft/lock``, re-entrant within a process);
a second run waits (or, with ``--no-wait``, exits 1). Read-only commands never take it.
``.phi3ft/`` is created 0700 and its files 0600, whatever the umask.

Leaf module: stdlib (and phi3ft.errors / phi3ft.redact) only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from phi3ft.errors import Phi3ftError
from phi3ft.redact import redact_data

try:  # POSIX advisory locks; on Windows the lock is a no-op (single-user tool).
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

STATE_VERSION = 1
STATE_FILE = "state.json"
RUN_LOCK_FILE = "lock"

#: Tag phi3ft puts on every resource it creates: the ``creation_id`` of the ledger's intent record.
CREATION_TAG = "phi3ft-creation-id"
#: ``status`` of an intent record: the create call may or may not have reached Azure.
CREATING = "creating"

_run_locks: dict[str, list[Any]] = {}  # lock path -> [fd, depth] (re-entrant within the process)
_run_locks_guard = threading.RLock()


class LockBusy(Phi3ftError):
    """Another phi3ft process holds the run lock of this ``.phi3ft`` (``--no-wait``): exit 1."""

    def __init__(self, pid: str) -> None:
        super().__init__(
            lock_message(pid).replace("; waiting", "; not waiting (--no-wait)"),
            "Let that run finish (or drop --no-wait to queue behind it), then re-run: phi3ft resumes.",
        )
        self.pid = pid


def lock_message(pid: str) -> str:
    return f"another phi3ft run (pid {pid or '?'}) is changing .phi3ft; waiting"


def _ensure_private_dir(path: Path) -> None:
    """``path`` (and missing parents) as a 0700 folder, whatever the umask."""
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)


def _open_private(path: Path) -> int:
    """Open (create 0600) a file for read/write, fixing the mode of one created under another umask."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    return fd


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
        _ensure_private_dir(self.dir)
        fd = _open_private(self.dir / ".lock")
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                data = self.load()
                yield data
                self._write(data)
            finally:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ---- the run lock ----------------------------------------------------------------------------------
    #: False (``--no-wait``): :meth:`run_lock` raises :class:`LockBusy` instead of waiting.
    wait_for_lock: bool = True

    @contextlib.contextmanager
    def run_lock(self, *, wait: bool | None = None, notify: Any = None) -> Iterator[None]:
        """Hold the exclusive run lock of this ``.phi3ft`` (re-entrant within the process).

        A second process prints once (``notify``, default stderr) that it waits for the pid holding it;
        with ``wait=False`` (default :attr:`wait_for_lock`) it raises :class:`LockBusy` instead.
        """
        wait = self.wait_for_lock if wait is None else wait
        _ensure_private_dir(self.dir)
        path = str((self.dir / RUN_LOCK_FILE).resolve())
        with _run_locks_guard:
            held = _run_locks.get(path)
            if held is not None:
                held[1] += 1
        if held is not None:
            try:
                yield
            finally:
                with _run_locks_guard:
                    held[1] -= 1
            return
        fd = _open_private(Path(path))
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    pid = _read_pid(fd)
                    if not wait:
                        raise LockBusy(pid) from None
                    (notify or _stderr)(lock_message(pid))
                    fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            with _run_locks_guard:
                _run_locks[path] = [fd, 1]
            try:
                yield
            finally:
                with _run_locks_guard:
                    _run_locks.pop(path, None)
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=self.dir)  # mode 0600
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

    def record_resource(
        self,
        kind: str,
        key: str,
        *,
        created: bool,
        tags: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Record a resource that was either created now or found and reused.

        ``created_by_phi3ft`` is sticky: once phi3ft created something, a later run that reuses it does
        not turn it into "existed before" (so ``delete`` still cleans it up). A found resource whose
        ``tags`` carry a creation id this ledger recorded (a run killed between the create and its ledger
        write) is phi3ft's too. The intent's ``status: "creating"`` is cleared.
        """
        current = self.get(kind, key) or {}
        was_ours = bool(current.get("created_by_phi3ft", False)) or self.owns(kind, key, tags)
        if current.get("status") == CREATING:
            fields.setdefault("status", "ready")
        return self.record(kind, key, **fields, created_by_phi3ft=bool(created or was_ours))

    # ---- intents (ownership that survives a kill) ----------------------------------------------------
    def intent(self, kind: str, key: str, **fields: Any) -> str:
        """Record that phi3ft is about to create ``kind``/``key``; returns the creation id to tag it with.

        The id is sticky per record (a re-run after a kill reuses it), and every id ever issued for the
        record is kept in ``creation_ids``.
        """
        with self._locked() as data:
            bucket = data["resources"].setdefault(kind, {})
            current = bucket.get(key) if isinstance(bucket.get(key), dict) else {}
            merged = {**current, **fields}
            cid = str(current.get("creation_id") or secrets.token_hex(8))
            ids = [str(i) for i in current.get("creation_ids") or [] if i]
            if cid not in ids:
                ids.append(cid)
            merged.update(creation_id=cid, creation_ids=ids)
            if current.get("status") in (None, CREATING) or not current:
                merged["status"] = CREATING
            merged.setdefault("name", key)
            merged.setdefault("created_at", utc_now())
            merged.setdefault("created_by_phi3ft", bool(current.get("created_by_phi3ft", False)))
            merged["updated_at"] = utc_now()
            bucket[key] = merged
            return cid

    def remove_intent(self, kind: str, key: str) -> None:
        """Drop ``kind``/``key`` if it is still only an intent (the create was refused: nothing exists)."""
        with self._locked() as data:
            record = data["resources"].get(kind, {}).get(key)
            if isinstance(record, dict) and record.get("status") == CREATING:
                data["resources"][kind].pop(key, None)

    def owns(self, kind: str, key: str, tags: dict[str, Any] | None) -> bool:
        """Whether ``tags`` (of a resource found in Azure) carry a creation id this ledger issued for it."""
        found = str((tags or {}).get(CREATION_TAG) or "")
        if not found:
            return False
        record = self.get(kind, key) or {}
        return found in {str(i) for i in record.get("creation_ids") or []} | {str(record.get("creation_id"))}

    def remove(self, kind: str, key: str) -> None:
        with self._locked() as data:
            data["resources"].get(kind, {}).pop(key, None)
            if kind == "job" and data.get("last_job") == key:
                data["last_job"] = None

    def set_last_job(self, key: str) -> None:
        with self._locked() as data:
            data["last_job"] = key


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return ""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
