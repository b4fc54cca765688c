"""`report.html`: the run report as one self-contained page, its confusion matrix opening its images.

The same content as `report.md` (settings, data, training, metrics, plots),
with every plot embedded, and the validation confusion matrix as a table
whose cells link to the images behind them (thumbnails with their file,
prediction and probability), so a mistake is one click from its picture.
"""

import numpy as np

from transfer_tf.core import html_page as html

CELL_IMAGES = 24  # thumbnails per confusion-matrix cell; the interpretation table lists them all


def write_report_page(path, title, tables, metrics_text, plot_files, analysis=None):
    """Writes the page; returns its path.

    Args:
        path: path of `report.html`.
        title: str.
        tables: list of `(heading, header, rows, note)` sections.
        metrics_text: dict of split -> the metrics as preformatted text.
        plot_files: dict of title -> PNG path (absolute or relative to the page).
        analysis: `Interpretation` of the validation images, or `None`.
    """
    folder = path.parent
    sections = [html.section(heading, html.table(header, rows), *([html.paragraph(note)] if note else []))
                for heading, header, rows, note in tables]
    if metrics_text:
        sections.append(html.section("Metrics", *(
            f"<h3>{html.escape(split.capitalize())}</h3><pre>{html.escape(text)}</pre>"
            for split, text in metrics_text.items())))
    if analysis is not None and len(analysis.labels):
        sections += _confusion_sections(analysis)
    for plot_title, file in plot_files.items():
        sections.append(html.section(plot_title, html.plot(folder / file, plot_title)))
    return html.write_page(path, title, sections)


def _confusion_sections(analysis):
    matrix = analysis.confusion_matrix()
    names = analysis.class_names
    peak = max(int(matrix.max()), 1)
    rows = []
    for t, name in enumerate(names):
        cells = [html.escape(name)]
        for p in range(len(names)):
            count = int(matrix[t, p])
            shade = _shade(count / peak, correct=t == p)
            text = f'<a href="#cell-{t}-{p}">{count}</a>' if count else "0"
            cells.append(f'<span style="background:{shade};display:block">{text}</span>')
        rows.append(cells)
    table = html.table(["true \\ predicted", *names], rows, html_columns=tuple(range(len(names) + 1)))
    sections = [html.section("Confusion matrix (validation)", html.paragraph(
        "Rows are the true class, columns the prediction. Click a count to see its images."), table)]
    cells = []
    for t in range(len(names)):
        for p in range(len(names)):
            indices = analysis.cell(t, p)
            if len(indices):
                cells.append(_cell_section(analysis, t, p, indices))
    sections.append(html.section("Images of each cell", *cells))
    return sections


def _cell_section(analysis, true, predicted, indices):
    names = analysis.class_names
    shown = indices[:CELL_IMAGES]
    figures = "".join(
        html.thumbnail(html.array_data_uri(analysis.images(int(i))),
                       f"{analysis.names[i]} p={analysis.scores[i][predicted]:.2f}") for i in shown)
    more = len(indices) - len(shown)
    note = html.paragraph(f"... and {more} more in interpretation/interpretation.csv.", note=True) if more else ""
    verdict = "right" if true == predicted else "wrong"
    return (f'<div id="cell-{true}-{predicted}"><h3>{html.escape(names[true])} predicted as '
            f"{html.escape(names[predicted])} ({len(indices)}, {verdict})</h3>{figures}{note}</div>")


def _shade(fraction, *, correct):
    """A background colour: green for the diagonal, red elsewhere, stronger for more images."""
    level = int(round(255 - 120 * float(np.clip(fraction, 0, 1))))
    return f"rgb({level},255,{level})" if correct else f"rgb(255,{level},{level})"
