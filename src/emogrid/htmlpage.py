"""Standalone HTML pages of tables (pandas only: jobs without plotting libraries use it too)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd


def to_html_document(title: str, sections: Sequence[tuple[str, str, pd.DataFrame]]) -> str:
    """A standalone HTML page with one (heading, note, table) section per entry."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif} table{border-collapse:collapse} "
        "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right} th{background:#eee}</style>",
        "</head><body>",
    ]
    for heading, note, frame in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(f"<p>{html.escape(note)}</p>")
        # na_rep does not reach pandas' nullable integer columns (Int64 printed <NA>): blank them first.
        shown = frame.astype(object).where(frame.notna(), "")
        parts.append(shown.to_html(index=False, na_rep="", border=0, float_format=lambda v: f"{v:.4f}"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def synthetic_warning(synthetic: Sequence[str]) -> str:
    """The sentence that opens a table's note when some of its datasets are synthetic; "" if none."""
    if not synthetic:
        return ""
    verb = "is" if len(synthetic) == 1 else "are"
    return (
        f"SYNTHETIC DATA: {', '.join(synthetic)} {verb} the generated demo corpus, not the published"
        " data; these numbers only show that the pipeline runs and learns. "
    )
