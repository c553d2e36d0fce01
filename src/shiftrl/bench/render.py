"""The report document and its rendering: `Block`s to markdown, and that markdown to a\nstandalone html page (markdown-it-py, installed with rich)."""

from __future__ import annotations

import html

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


def to_html(doc: list[Block], title: str) -> str:
    """A standalone page: the markdown rendered by markdown-it-py (CommonMark with tables),
    which rich already installs, inside a page with a small stylesheet."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(to_markdown(doc))
    return (
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html><head><meta charset="utf-8">',
                f"<title>{html.escape(title)}</title>",
                "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;"
                "padding:0 1em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px "
                "solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child"
                "{text-align:left}img{max-width:100%}</style></head><body>",
                body,
                "</body></html>",
            ]
        )
        + "\n"
    )
