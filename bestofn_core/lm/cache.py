"""The LM response cache: a bounded in-memory LRU in front of an on-disk SQLite store.

Keys are hashes of the whole request (model, messages, parameters, ``rollout_id``, ``api_base``) and never
of credentials; values are the choices' text and nothing else, so no secret is ever written to disk.
SQLite comes with Python and survives the process; WAL mode lets several processes share one cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$BESTOFN_CACHE_DIR``, else ``~/.bestofn_cache`` (read when the cache is created, not at import)."""
    return Path(os.environ.get("BESTOFN_CACHE_DIR") or Path.home() / ".bestofn_cache")


def request_key(request: dict[str, Any]) -> str:
    """A stable hash of a request dict (keys sorted; values that JSON can't hold are stringified)."""
    data = orjson.dumps(request, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=repr)
    return hashlib.sha256(data).hexdigest()


class ResponseCache:
    """Memory LRU + SQLite cache of LM outputs.

    Args:
        directory: where the SQLite file lives; ``None`` disables the disk layer.
        memory_entries: how many responses the memory layer keeps (least recently used dropped).
        disk_entries: how many responses the disk layer keeps (oldest dropped).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        *,
        enable_memory: bool = True,
        memory_entries: int = 10_000,
        disk_entries: int = 1_000_000,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.enable_memory = enable_memory
        self.memory_entries = memory_entries
        self.disk_entries = disk_entries
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._db_failed = False
        self._writes = 0

    def _connection(self) -> sqlite3.Connection | None:
        if self.directory is None or self._db_failed:
            return None
        if self._db is None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    self.directory / "responses.sqlite3", check_same_thread=False, timeout=30
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value BLOB, created REAL)"
                )
                db.commit()
                self._db = db
            except (sqlite3.Error, OSError) as exc:
                # a read-only home or full disk must not break LM calls: fall back to memory only
                logger.warning("Disk cache at %s unavailable (%s); using memory only", self.directory, exc)
                self._db_failed = True
                return None
        return self._db

    def get(self, key: str) -> Any | None:
        """The cached value for ``key``, or ``None``."""
        with self._lock:
            if self.enable_memory and key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
            db = self._connection()
            if db is None:
                return None
            try:
                row = db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error as exc:
                logger.warning("Disk cache read failed: %s", exc)
                return None
            if row is None:
                return None
            try:
                value = orjson.loads(row[0])
            except orjson.JSONDecodeError:
                return None
            self._remember(key, value)
            return value

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-able) under ``key`` in both layers."""
        with self._lock:
            self._remember(key, value)
            db = self._connection()
            if db is None:
                return
            try:
                db.execute(
                    "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                    (key, orjson.dumps(value), time.time()),
                )
                db.commit()
                self._writes += 1
                if self._writes % 1000 == 0:
                    self._trim(db)
            except sqlite3.Error as exc:
                logger.warning("Disk cache write failed: %s", exc)

    def _remember(self, key: str, value: Any) -> None:
        if not self.enable_memory:
            return
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_entries:
            self._memory.popitem(last=False)

    def _trim(self, db: sqlite3.Connection) -> None:
        (count,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
        if count > self.disk_entries:
            db.execute(
                "DELETE FROM responses WHERE key IN (SELECT key FROM responses ORDER BY created LIMIT ?)",
                (count - self.disk_entries,),
            )
            db.commit()

    def clear(self) -> None:
        """Drop every entry from both layers."""
        with self._lock:
            self._memory.clear()
            db = self._connection()
            if db is not None:
                db.execute("DELETE FROM responses")
                db.commit()

    def __len__(self) -> int:
        return len(self._memory)

    def close(self) -> None:
        """Close the SQLite connection (reopened on next use)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


_cache: ResponseCache | None = None


def get_cache() -> ResponseCache:
    """The process-wide response cache (created on first use)."""
    global _cache
    if _cache is None:
        _cache = ResponseCache(default_cache_dir())
    return _cache


def configure_cache(
    *,
    enable_disk_cache: bool = True,
    enable_memory_cache: bool = True,
    disk_cache_dir: str | os.PathLike[str] | None = None,
    memory_max_entries: int = 10_000,
    disk_max_entries: int = 1_000_000,
) -> ResponseCache:
    """Replace the process-wide cache, e.g. to move or turn off the disk layer. Returns the new cache."""
    global _cache
    if _cache is not None:
        _cache.close()
    directory = (
        (Path(disk_cache_dir) if disk_cache_dir else default_cache_dir()) if enable_disk_cache else None
    )
    _cache = ResponseCache(
        directory,
        enable_memory=enable_memory_cache,
        memory_entries=memory_max_entries,
        disk_entries=disk_max_entries,
    )
    return _cache
