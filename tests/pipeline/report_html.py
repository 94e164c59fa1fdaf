"""A small reader for report.html in tests: elements by id, tables as lists of rows of cell text; and
:func:`rlaif_report`, the real ``rlaif report`` that writes it."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

VOID = {"meta", "img", "br", "hr", "link", "input"}


class Report(HTMLParser):
    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.by_id: dict[str, dict] = {}  # id -> {"tag", "attrs", "text"}
        self.tables: dict[str, list[list[str]]] = {}
        self.title = ""
        self.body_class = ""
        self.images: list[str] = []
        self._open: list[tuple[str, dict]] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body_class = attrs.get("class") or ""
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        if tag == "title":
            self._in_title = True
        if tag == "table":
            self._table = attrs.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "li" and self._cell is not None:
            self._cell.append(" ")  # list items read as separate words
        if tag in VOID:
            return
        entry = {"tag": tag, "attrs": attrs, "text": ""}
        if "id" in attrs:
            self.by_id[attrs["id"]] = entry
        self._open.append((tag, entry))

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell.append(data)
        for _, entry in self._open:
            if "id" in entry["attrs"]:
                entry["text"] += data

    def text_of(self, element_id: str) -> str:
        return " ".join(self.by_id[element_id]["text"].split())

    def column(self, table: str, header: str) -> list[str]:
        rows = self.tables[table]
        index = rows[0].index(header)
        return [r[index] for r in rows[1:]]


def rlaif_report(run_dir: Path) -> subprocess.CompletedProcess:
    """``rlaif report RUN_DIR`` in its own process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "rlaif.cli", "report", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
