"""Self-contained HTML pages: one file a browser opens by double-click.

Images are embedded as `data:` URIs, the style is inline, and there is no
script and no external address, so the page reads the same offline, from an
e-mail attachment, or years later. The run report (`report.html`) and the
data audit (`report.html`) are built from these pieces.
"""

import base64
import html
import io
from pathlib import Path

from transfer_tf.core.integrity import write_text_atomically

THUMBNAIL_SIZE = 96
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
td.heat a { display: block; color: inherit; text-decoration: none; }
figure { display: inline-block; margin: 0.3em; text-align: center; font-size: 0.75em; max-width: 10em;
         overflow-wrap: anywhere; vertical-align: top; }
img.plot { max-width: 100%; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
.note { color: #666; }
"""


def escape(value):
    """Text made safe to put inside HTML."""
    return html.escape(str(value), quote=True)


def file_data_uri(path):
    """A PNG or JPEG file as a `data:` URI."""
    path = Path(path)
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"Only PNG and JPEG files can be embedded. Received: {path}")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def array_data_uri(image, size=THUMBNAIL_SIZE):
    """An RGB uint8 array `(height, width, 3)` as a JPEG `data:` URI, at most `size` pixels a side."""
    from PIL import Image

    picture = Image.fromarray(image)
    picture.thumbnail((size, size))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return f"data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def plot(path, alt):
    """A PNG file embedded as an image as wide as the page allows."""
    return f'<img class="plot" src="{file_data_uri(path)}" alt="{escape(alt)}">'


def thumbnail(uri, caption):
    """A small image (a `data:` URI) with a caption under it."""
    return (f'<figure><img src="{uri}" alt="{escape(caption)}" width="{THUMBNAIL_SIZE}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def table(header, rows, *, html_columns=(), number_columns=()):
    """An HTML table; cells are escaped text except in `html_columns` (indices), which hold markup."""
    head = "".join(f"<th>{escape(name)}</th>" for name in header)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = str(value) if i in html_columns else escape(value)
            css = ' class="number"' if i in number_columns else ""
            cells.append(f"<td{css}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def section(title, *parts, anchor=None):
    """A `<h2>` section holding the given markup parts."""
    anchor_attribute = f' id="{escape(anchor)}"' if anchor else ""
    return f"<section{anchor_attribute}><h2>{escape(title)}</h2>{''.join(parts)}</section>"


def paragraph(text, *, note=False):
    return f'<p{" class=note" if note else ""}>{escape(text)}</p>'


def page(title, sections):
    """The whole page as text."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{''.join(sections)}</body></html>\n")


def write_page(path, title, sections):
    """Writes `page(title, sections)` to `path` atomically; returns the path."""
    return write_text_atomically(path, page(title, sections))
