"""`report.html`: the audit's findings with their thumbnails, in one self-contained page."""

from transfer_tf.core import html_page as html
from transfer_tf.data.exclusions import AUDIT_ISSUES

SHOWN = 60  # findings per issue on the page; audit.csv has them all
_TITLES = {
    "label": ("Label issues", "Files whose folder is probably the wrong class, most likely first, with the class "
              "an out-of-fold classifier suggests."),
    "duplicate": ("Exact duplicates", "Byte-identical files; one copy of each is enough."),
    "near_duplicate": ("Near duplicates", "Near-identical images (their small grayscale signatures correlate at or "
                       "above the threshold): re-encoded, resized or brightened copies."),
    "conflict": ("Conflicting labels", "Copies of one image filed under different classes: at most one is right."),
    "leakage": ("Leakage", "Copies of one image in different splits: the held-out figure is too optimistic."),
    "outlier": ("Outliers", "Images far from every other image: check that they belong to the data set."),
    "odd_file": ("Odd files", "Files a training run cannot read, ignores, or may mis-learn from."),
}


def write_audit_page(result, path):
    """Writes the audit's page; returns its path."""
    counts = result.counts()
    overview = html.table(
        ["issue", "files", "what it means"],
        [(f'<a href="#{issue}">{html.escape(_TITLES[issue][0])}</a>', counts[issue], _TITLES[issue][1])
         for issue in AUDIT_ISSUES], html_columns=(0,), number_columns=(1,))
    settings = html.table(["setting", "value"], sorted(result.settings.items()))
    classes = html.table(["class", "images"], [(name, sum(f.label == i for f in result.files))
                                               for i, name in enumerate(result.class_names)], number_columns=(1,))
    sections = [
        html.section("Summary", html.paragraph(
            f"{len(result.files)} images in {len(result.class_names)} classes read from {result.root} in "
            f"{result.seconds:.1f} s; {len(result.unusable)} file(s) unusable or ignored. Nothing in the folder "
            "was changed. audit.csv beside this page lists every finding."), overview),
        html.section("Classes", classes),
        *(_issue_section(result, issue) for issue in AUDIT_ISSUES),
        html.section("Settings", settings),
    ]
    return html.write_page(path, f"Data audit: {result.root.name}", sections)


def _issue_section(result, issue):
    title, meaning = _TITLES[issue]
    rows = [f for f in result.findings if f.issue == issue]
    if not rows:
        return html.section(title, html.paragraph(f"None found. {meaning}", note=True), anchor=issue)
    parts = [html.paragraph(meaning)]
    if rows[0].group:
        groups = {}
        for finding in rows:
            groups.setdefault(finding.group, []).append(finding)
        for group, members in list(groups.items())[:SHOWN // 3]:
            parts.append(f"<div><strong>{html.escape(group)}</strong>: {html.escape(members[0].detail)}<br>"
                         + "".join(_figure(result, f) for f in members) + "</div>")
        hidden = max(0, len(groups) - SHOWN // 3)
    else:
        parts.append("<div>" + "".join(_figure(result, f) for f in rows[:SHOWN]) + "</div>")
        parts.append(html.table(["path", "score", "label", "suggested", "why"],
                                [(f.path, f"{f.score:.3f}", f.label, f.suggested_label, f.detail)
                                 for f in rows[:SHOWN]], number_columns=(1,)))
        hidden = max(0, len(rows) - SHOWN)
    if hidden:
        parts.append(html.paragraph(f"... and {hidden} more in audit.csv.", note=True))
    return html.section(f"{title} ({len({f.path for f in rows})})", *parts, anchor=issue)


def _figure(result, finding):
    where = ", ".join(filter(None, [finding.label, finding.split and f"{finding.split} split"]))
    caption = f"{finding.path} [{where}" + (f" -> {finding.suggested_label}]" if finding.suggested_label else "]")
    if finding.index is None:
        return f"<figure><div>(no image)</div><figcaption>{html.escape(caption)}</figcaption></figure>"
    return html.thumbnail(html.array_data_uri(result.thumbnails[finding.index]), caption)
