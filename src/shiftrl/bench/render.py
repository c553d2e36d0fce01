"""The report document and its rendering: `Block`s to markdown or standalone html."""

from __future__ import annotations

import html
import re

Block = tuple  # ("h", level, text) | ("p", text) | ("table", header, rows) | ("img", alt, src) | ("code", text)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(doc: list[Block]) -> str:
    out: list[str] = []
    for b in doc:
        kind = b[0]
        if kind == "h":
            out.append(f"{'#' * b[1]} {b[2]}")
        elif kind == "p":
            out.append(b[1])
        elif kind == "table":
            header, rows = b[1], b[2]
            out.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out += ["| " + " | ".join(_md_escape(x) for x in r) + " |" for r in rows]
        elif kind == "img":
            out.append(f"![{b[1]}]({b[2]})")
        elif kind == "code":
            out.append(f"```bash\n{b[1]}\n```")
        out.append("")
    return "\n".join(out)


def _inline_md(text: str) -> str:
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"\*(.+?)\*", r"<i>\1</i>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def to_html(doc: list[Block], title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%}</style></head><body>",
    ]
    for b in doc:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{_inline_md(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline_md(b[1])}</p>")
        elif kind == "table":
            out.append(
                "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in b[1]) + "</tr>"
            )
            for r in b[2]:
                out.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in r) + "</tr>")
            out.append("</table>")
        elif kind == "img":
            out.append(f'<p><img src="{html.escape(b[2])}" alt="{html.escape(b[1])}"></p>')
        elif kind == "code":
            out.append(f"<pre><code>{html.escape(b[1])}</code></pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
