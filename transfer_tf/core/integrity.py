"""Files read back from disk are verified before they are used: one place for every kind.

transfer_tf keeps files between runs (the feature cache, the converted
EfficientNet-Lite weights, the backups `--resume` reads, run folders and
exports). Any of them can be truncated, zeroed or replaced between the run
that wrote it and the run that reads it. Each is recorded when written, as
its size and a SHA-256 checksum (`fingerprint`), and checked against that
record before it is read (`damage`). What a caller does with a damaged file
depends on what it is: a cache entry is rebuilt, a backup epoch falls back to
an intact one, a run folder or an export is refused (`DamagedFileError`).

SHA-256 rather than BLAKE2b or xxhash: on CPUs with SHA instructions Python's
`hashlib` hashed 0.61 GiB/s against BLAKE2b's 0.38 here, it needs no new
dependency, and an app team checks an export with `sha256sum -c SHA256SUMS`.
`benchmarks/verify_cost.py` measures the cost next to recomputing a cache.
"""

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

CHUNK = 2**22
ALGORITHM = "sha256"


class DamagedFileError(ValueError):
    """A file transfer_tf wrote earlier is missing, truncated or changed since.

    The message names the file, what is wrong with it and how to fix it.
    """


def checksum(path):
    """The SHA-256 digest of a file's bytes, as hex text."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as file:
        while count := file.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


def fingerprint(path):
    """What `damage` checks a file against later: `{"size": bytes, "sha256": hex}`."""
    return {"size": os.path.getsize(path), ALGORITHM: checksum(path)}


def damage(path, expected):
    """Why a file does not match its recorded fingerprint, or `None` when it does.

    Args:
        path: str or path.
        expected: dict from `fingerprint`, or `None` (nothing recorded: damaged).

    Returns:
        str or `None`: "missing", "no checksum recorded", "truncated or extended
        (N bytes, expected M)" or "its contents changed (checksum differs)".
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    if not expected or ALGORITHM not in expected:
        return "no checksum recorded"
    size = path.stat().st_size
    if size != expected.get("size"):
        return f"truncated or extended ({size:,} bytes, expected {expected.get('size', 0):,})"
    try:
        if checksum(path) != expected[ALGORITHM]:
            return "its contents changed (checksum differs)"
    except OSError as error:
        return f"unreadable ({error.strerror or error})"
    return None


def verify(path, expected, *, fix):
    """Raises `DamagedFileError` naming `path` and `fix` unless it matches `expected`."""
    reason = damage(path, expected)
    if reason is not None:
        raise DamagedFileError(f"{path} is damaged: {reason}. {fix}")


def write_atomically(path, write, *, suffix=".partial"):
    """Calls `write(partial_path)`, then renames the partial file to `path`.

    A reader sees the old file or the complete new one, never a part; two
    writers at once each rename a complete file of their own. The partial
    file is removed if `write` fails.

    Args:
        path: str or path. The file to write.
        write: callable taking the partial file's path.
        suffix: str. How the partial file's name ends (Keras wants
            `.weights.h5` or `.keras`). Defaults to `".partial"`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        write(Path(partial))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)  # mkstemp's 0600 would hide the file from other users
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def write_text_atomically(path, text):
    """Writes `text` (UTF-8) to `path` through `write_atomically`; returns the path."""
    return write_atomically(path, lambda partial: Path(partial).write_text(text, encoding="utf-8"))


def write_json_atomically(path, data):
    """Writes `data` as indented JSON to `path` through `write_atomically`; returns the path."""
    return write_text_atomically(path, json.dumps(data, indent=2) + "\n")


@contextlib.contextmanager
def folder_lock(folder):
    """Holds an exclusive lock on `folder` (a `.lock` file in it) while the block runs.

    Two processes filling one cache folder then take turns: the second finds
    the first one's complete files. Where `fcntl` does not exist (Windows),
    no lock is taken; every file is still written by `write_atomically`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux/macOS
        yield
        return
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


CHECKSUMS_FILE = "SHA256SUMS"


def write_checksums(folder):
    """Writes `folder/SHA256SUMS`: one `checksum  relative/path` line per file under it.

    The format of `sha256sum`, so that whoever receives the folder checks
    it with `sha256sum -c SHA256SUMS` (`shasum -a 256 -c` on macOS).

    Returns:
        dict of relative path to checksum.
    """
    folder = Path(folder)
    sums = {path.relative_to(folder).as_posix(): checksum(path) for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != CHECKSUMS_FILE}
    (folder / CHECKSUMS_FILE).write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    return sums


def verify_checksums(folder):
    """Checks every file `folder/SHA256SUMS` lists.

    Raises:
        DamagedFileError: naming the first file that is missing or changed,
            or if the list itself is missing.
    """
    folder = Path(folder)
    listing = folder / CHECKSUMS_FILE
    if not listing.is_file():
        raise DamagedFileError(f"{listing} is missing: the folder's files cannot be checked. Export again.")
    for line in listing.read_text().splitlines():
        digest, _, name = line.partition("  ")
        path = folder / name
        if not path.is_file():
            raise DamagedFileError(f"{path} is missing. Export again, or copy the whole folder again.")
        if checksum(path) != digest:
            raise DamagedFileError(f"{path} is damaged: its contents changed (checksum differs from "
                                   f"{CHECKSUMS_FILE}). Export again, or copy the whole folder again.")
