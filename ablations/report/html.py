"""`report.html`: the markdown report rendered once more as a single self-contained file.

The markdown is rendered with markdown-it-py (CommonMark plus GitHub's pipe tables) and every
local image is inlined as a data URI, so the file can be mailed or attached on its own.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

from markdown_it import MarkdownIt

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #1f2328; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; }
tr:nth-child(even) { background: #f6f8fa; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; }
img { max-width: 100%; }
"""


def markdown_to_html(text: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)


def _inline(match: re.Match[str], root: Path) -> str:
    src = html.unescape(match.group(1))
    path = root / src
    if "://" in src or src.startswith("data:") or not path.is_file():
        return match.group(0)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:{mime};base64,{data}"'


def write_html(markdown_path: Path) -> Path:
    """Write report.html next to report.md; images next to the report become data URIs."""
    text = markdown_path.read_text()
    title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), "Ablation report")
    body = markdown_to_html(text)
    body = re.sub(r'<img src="([^"]+)"', lambda m: _inline(m, markdown_path.parent), body)
    page = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
    path = markdown_path.with_suffix(".html")
    path.write_text(page)
    return path
