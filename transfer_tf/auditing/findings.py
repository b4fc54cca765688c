"""One finding of the audit, and the files that hold them: `audit.csv` (the exact columns other tools read) and `audit.json`."""

import csv
import dataclasses

from transfer_tf.core.integrity import write_atomically
from transfer_tf.data.exclusions import AUDIT_COLUMNS, AUDIT_ISSUES


@dataclasses.dataclass
class Finding:
    """One problem with one file.

    Attributes:
        path: str. The file, relative to the audited folder (POSIX).
        issue: str. One of `AUDIT_ISSUES`.
        score: float. Higher means more likely a real problem (compare
            within one issue).
        group: str. Ties the members of one duplicate group together
            (`d1`, `n1`); empty otherwise.
        label: str. The file's class folder (empty outside one).
        suggested_label: str. For `label` issues: the class the out-of-fold
            classifier prefers.
        detail: str. In words, for people (not in `audit.csv`).
        index: int or `None`. The file's position among the readable files
            (for its thumbnail).
        split: str. The file's split where it matters (leakage), else empty.
    """

    path: str
    issue: str
    score: float
    group: str = ""
    label: str = ""
    suggested_label: str = ""
    detail: str = ""
    index: object = None
    split: str = ""

    def __post_init__(self):
        if self.issue not in AUDIT_ISSUES:
            raise ValueError(f"issue must be one of {AUDIT_ISSUES}. Received: issue={self.issue!r}")

    def row(self):
        return {"path": self.path, "issue": self.issue, "score": f"{self.score:.4f}", "group": self.group,
                "label": self.label, "suggested_label": self.suggested_label}


def ordered(findings):
    """By issue (in `AUDIT_ISSUES` order), then group, then highest score, then path."""
    rank = {issue: i for i, issue in enumerate(AUDIT_ISSUES)}
    return sorted(findings, key=lambda f: (rank[f.issue], _group_key(f.group), -f.score, f.path))


def write_csv(path, findings):
    """Writes `audit.csv`: one row per finding, columns `AUDIT_COLUMNS`."""
    def write(partial):
        with open(partial, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=AUDIT_COLUMNS)
            writer.writeheader()
            writer.writerows(f.row() for f in findings)
    return write_atomically(path, write)




def _group_key(group):
    return (group[:1], int(group[1:])) if group[1:].isdigit() else (group, 0)
