"""Files on disk: checksums, downloads and archive extraction that leave nothing half-written.

Every write goes to a temporary name in the destination's folder and is renamed into place
only when complete and verified, so a killed download or a refused archive leaves no trace.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
from typing import BinaryIO, Callable, Optional

from .errors import DataError


def write_atomically(path: str, write: Callable[[BinaryIO], None]) -> None:
    """``write(f)`` fills a temporary file in the destination's folder, which is then renamed
    to ``path``: a reader, or a process killed mid-write, never sees half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_output(path: str, folder: bool, flag: str = "--out") -> str:
    """``path`` if mentor can write there (a folder, or a file when ``folder`` is False), checked
    before any work: not a file where a folder must be (or the reverse), no file among its parent
    folders, no name over the filesystem's limit, a parent that can be written to. Else a
    ConfigError naming the path and the problem."""
    from .errors import ConfigError

    if not path:
        raise ConfigError(f"{flag} is empty")
    absolute = os.path.abspath(path)
    for part in absolute.split(os.sep):
        if len(part.encode()) > 255:
            raise ConfigError(f"{flag} {path}: the name {part[:40]}... is {len(part.encode())} bytes long, over the "
                              "filesystem's limit of 255")
    if folder and os.path.exists(absolute) and not os.path.isdir(absolute):
        raise ConfigError(f"{flag} {path} is a file; give a folder (it is created if missing)")
    if not folder and os.path.isdir(absolute):
        raise ConfigError(f"{flag} {path} is a folder; give a file name")
    parent = os.path.dirname(absolute)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConfigError(f"{flag} {path}: {parent} is a file, so nothing can be written under it")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{flag} {path}: {parent} cannot be written to (permission denied)")
    return path


def write_json_atomically(path: str, data) -> None:
    write_atomically(path, lambda f: f.write(json.dumps(data, indent=2).encode()))


def read_json(path: str) -> dict:
    """A JSON file mentor wrote, or a DataError saying it is damaged (cut short by a kill, edited)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is damaged (not valid JSON: {exc}); restore it or start the run afresh") from None


def read_jsonl(path: str) -> list:
    """The records of a JSON-lines file mentor appends to (metrics.jsonl). A kill can tear its last
    line: that line is dropped, with a warning that says so; a damaged line before it is a
    DataError naming the line."""
    import warnings

    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [(number, line) for number, line in enumerate(f, start=1) if line.strip()]
    records = []
    for i, (number, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                warnings.warn(f"{path}: dropped its last line ({number}), cut short (a killed run leaves one)",
                              stacklevel=2)
                break
            raise DataError(f"{path}, line {number}, is damaged (not valid JSON); restore the file or start the "
                            "run afresh") from None
    return records


def file_digest(path: str, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str, expected: str, algorithm: str) -> None:
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise DataError(f"checksum mismatch for {path}: {algorithm} is {actual}, expected {expected} "
                        "(a corrupt or incomplete file; delete it and download again)")


def download(url: str, dest: str, checksum: str, algorithm: str = "md5", progress: bool = True) -> str:
    """Fetch url to dest unless a verified copy is there; the file appears only once verified."""
    if os.path.exists(dest):
        verify_checksum(dest, checksum, algorithm)
        return dest
    folder = os.path.dirname(os.path.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            from tqdm.auto import tqdm

            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(dest),
                      disable=not progress, leave=False) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        verify_checksum(tmp, checksum, algorithm)
        os.replace(tmp, dest)
    except OSError as exc:
        raise DataError(f"cannot download {url}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def check_tar_member(member: tarfile.TarInfo, archive: str) -> None:
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or os.path.isabs(name) or ".." in parts:
        raise DataError(f"{archive}: refusing the entry {name!r}, whose path leaves the extraction folder")
    if member.issym() or member.islnk():
        raise DataError(f"{archive}: refusing the link entry {name!r} (archives of datasets hold plain files)")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{archive}: refusing the special entry {name!r} (device, fifo or other)")


def safe_extract(archive: str, dest: str, checksum: Optional[str] = None, algorithm: str = "sha256") -> str:
    """Extract a tar archive into the folder dest after checking every entry.

    Absolute paths, '..' components, links and device files are refused before anything is
    written; extraction goes to a temporary sibling folder renamed to dest at the end.
    """
    if not os.path.isfile(archive):
        raise DataError(f"archive not found: {archive}")
    if checksum is not None:
        verify_checksum(archive, checksum, algorithm)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                check_tar_member(member, archive)
            parent = os.path.dirname(os.path.abspath(dest))
            os.makedirs(parent, exist_ok=True)
            tmp = tempfile.mkdtemp(dir=parent, prefix=".extract-")
            try:
                tar.extractall(tmp, members=members, filter="data")
                if os.path.exists(dest):
                    raise DataError(f"{dest} appeared while extracting {archive}; remove it and retry")
                os.replace(tmp, dest)
            finally:
                if os.path.exists(tmp):
                    shutil.rmtree(tmp)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"cannot read {archive} as a tar archive: {exc}") from None
    return dest
