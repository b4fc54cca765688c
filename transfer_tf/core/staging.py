"""Writing a folder so that a failure leaves nothing half-written.

Files are written into a temporary folder beside the target, then moved into
place only when all of them are complete.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def staged_folder(target, *, replace_whole=False, last=None, remove=()):
    """Yields a temporary folder beside `target`; moves what was written into place on success.

    Args:
        target: str or path. The folder to write.
        replace_whole: bool. `True` replaces `target` as a whole (an earlier
            folder is kept until the new one is complete); `False` moves the
            written entries into `target`, keeping whatever else it holds.
            Defaults to `False`.
        last: str or `None`. The entry moved last, whose presence marks a
            complete folder. Defaults to `None`.
        remove: iterable of str. Entries of `target` to delete when this
            write did not produce them (stale files of an earlier write).

    Raises:
        PermissionError: if the folder beside `target` cannot be written.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as error:
        raise PermissionError(
            f"Cannot write to {target.parent} ({error.strerror}). Choose another folder.") from None
    try:
        yield staging
        if replace_whole or not target.exists():
            _replace(staging, target)
        else:
            for name in remove:
                if not (staging / name).exists() and (target / name).exists():
                    _delete(target / name)
            names = sorted(p.name for p in staging.iterdir())
            if last in names:
                names.remove(last)
                names.append(last)
            for name in names:
                if (target / name).is_dir() and not (target / name).is_symlink():
                    _delete(target / name)
                os.replace(staging / name, target / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace(staging, target):
    if not target.exists():
        staging.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    target.rename(old / target.name)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _delete(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
