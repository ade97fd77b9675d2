"""What a run read, so that a resumed run, an evaluation or a rerun can tell when it changed.

A run records the fingerprint of every input path its config names (``data_path``, and the
dataset options ``test_path`` and ``unlabeled_path``) in its folder (inputs.json) with a run id
that its checkpoints carry too. A file's fingerprint is its size and sha256 (size and
modification time past HASH_LIMIT, where hashing would take longer than the run's start); a
folder's, or a set of shards', is every file's relative path, size and modification time (a
replaced file changes its time even at the same size). Built-in datasets have none.
"""
from __future__ import annotations

import functools
import hashlib
import os
import uuid
from typing import Dict, List, Optional

from ..errors import ConfigError, DataError
from ..files import file_digest
from .shards.format import expand

HASH_LIMIT = 1 << 30  # files up to 1 GiB are hashed (about 2 s); larger ones by size and time
INPUT_OPTIONS = ("test_path", "unlabeled_path")


def new_run_id() -> str:
    return uuid.uuid4().hex


def _file(path: str) -> dict:
    stat = os.stat(path)
    if stat.st_size <= HASH_LIMIT:
        return {"size": stat.st_size, "sha256": _digest(os.path.abspath(path), stat.st_ino, stat.st_size,
                                                         stat.st_mtime_ns, stat.st_ctime_ns)}
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@functools.lru_cache(maxsize=64)
def _digest(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    """A file's sha256, hashed once per process while its stat stays the same (every cell of a
    comparison records the same table; a write changes the change time, which no one can set)."""
    return file_digest(path)


def _files(paths: List[str], root: str) -> dict:
    digest = hashlib.sha256()
    for path in sorted(paths):
        stat = os.stat(path)
        digest.update(f"{os.path.relpath(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {"files": len(paths), "listing": digest.hexdigest()}


def _shard_paths(pattern: str) -> List[str]:
    """The shard files a pattern names (mentor.data.shards.format.expand), or none where it names
    nothing readable: the loader then says what is wrong with it."""
    try:
        return expand(pattern)
    except DataError:
        return []


def path_fingerprint(path: str) -> Optional[dict]:
    """The fingerprint of one input path (a file, a folder, or a shard pattern); None if it names
    nothing on disk (the loader then says so)."""
    if os.path.isfile(path):
        found = _file(path)
        if path.endswith(".json"):  # a shard manifest: the shards it lists are inputs too
            shards = [p for p in _shard_paths(path) if os.path.isfile(p)]
            if shards:
                found["shards"] = _files(shards, os.path.dirname(path) or ".")
        return found
    if os.path.isdir(path):
        files = [os.path.join(here, f) for here, dirs, names in os.walk(path) for f in names]
        return _files(files, path)
    shards = [p for p in _shard_paths(path) if os.path.isfile(p)]
    return _files(shards, os.path.dirname(path) or ".") if shards else None


def input_fingerprint(data_path: Optional[str], dataset_options: Optional[dict]) -> Dict[str, dict]:
    """{what: fingerprint} of every input path a run's config names."""
    named = {"data_path": data_path, **{k: (dataset_options or {}).get(k) for k in INPUT_OPTIONS}}
    prints = {}
    for what, path in named.items():
        if path:
            found = path_fingerprint(str(path))
            if found is not None:
                prints[what] = {"path": os.path.abspath(str(path)) if "{" not in str(path) else str(path), **found}
    return prints


def check_unchanged(saved: Dict[str, dict], now: Dict[str, dict], where: str, remedy: str) -> None:
    """A ConfigError naming each input whose fingerprint differs from the one ``where`` recorded."""
    changed = []
    for what in sorted(set(saved) | set(now)):
        before, after = saved.get(what), now.get(what)
        if before is None or after is None:
            changed.append(f"{what} {'added' if before is None else 'no longer given or found'}")
            continue
        differs = [k for k in sorted(set(before) - {"path"}) if before.get(k) != after.get(k)]
        if differs:
            changed.append(f"{what} {after['path']} ({', '.join(differs)} changed)")
    if changed:
        raise ConfigError(f"the inputs of {where} changed since it was made: {'; '.join(changed)}. {remedy}")
