"""Files a run leaves out: the findings of `transfer-tf audit` (`audit.csv`), or a plain list of paths.

`audit.csv` has one row per finding (`AUDIT_COLUMNS`). Leaving out every
flagged file would throw away the original of each duplicate too, so one
member of each duplicate group (exact, near or leaked) stays, the first by
path; every other flagged file is left out, and every member of a group
whose copies carry different labels (`conflict`), since the right label is
unknown. To keep a flagged file, delete its row first.
"""

import csv
from pathlib import Path, PurePosixPath

AUDIT_COLUMNS = ("path", "issue", "score", "group", "label", "suggested_label")
AUDIT_ISSUES = ("label", "duplicate", "near_duplicate", "conflict", "leakage", "outlier", "odd_file")
GROUP_ISSUES = ("duplicate", "near_duplicate", "leakage")


def read_exclusions(file):
    """The paths (relative to the data folder, POSIX) an exclusion file leaves out.

    Args:
        file: str or path. An `audit.csv` written by `transfer-tf audit`, or a
            text file with one path per line, relative to the data folder
            (empty lines and lines starting with `#` are skipped).

    Returns:
        sorted list of str.

    Raises:
        FileNotFoundError: if `file` does not exist.
        ValueError: for an `audit.csv` whose columns or issues are not the
            audit's.
    """
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"No exclusion file at {file}: pass the audit.csv `transfer-tf audit` wrote, "
                                f"or a text file of paths. Received: exclude={str(file)!r}")
    text = file.read_text(encoding="utf-8-sig")
    first = text.split("\n", 1)[0].strip()
    if first.startswith("path,"):
        return sorted(_audit_exclusions(list(csv.DictReader(text.splitlines())), file))
    lines = (line.strip() for line in text.splitlines())
    return sorted({_normalised(line) for line in lines if line and not line.startswith("#")})


def _audit_exclusions(rows, file):
    missing = [c for c in AUDIT_COLUMNS if rows and c not in rows[0]]
    unknown = sorted({row["issue"] for row in rows} - set(AUDIT_ISSUES)) if not missing else []
    if missing or unknown:
        raise ValueError(f"{file} is not an audit.csv of transfer-tf audit: columns {AUDIT_COLUMNS}, issues "
                         f"{AUDIT_ISSUES}. Received: missing columns {missing}, unknown issues {unknown}")
    groups, flagged = {}, set()
    for row in rows:
        path = _normalised(row["path"])
        if row["issue"] in GROUP_ISSUES and row["group"]:
            groups.setdefault(row["group"], set()).add(path)
        else:
            flagged.add(path)
    for members in groups.values():
        flagged.update(sorted(members)[1:])
    return flagged


def _normalised(path):
    return PurePosixPath(path.replace("\\", "/")).as_posix()
