"""Markdown building blocks shared by the report sections: number formats and pipe tables."""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

DASH = "—"


def fmt(x: Any, metric: str, signed: bool = False) -> str:
    """Accuracies with four decimals (0.9123), losses with four significant digits."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    sign = "+" if signed else ""
    return f"{x:{sign}.4f}" if metric.endswith("acc") else f"{x:{sign}.4g}"


def intervals(lows: pd.Series, highs: pd.Series, metric: str, signed: bool = False) -> list[str]:
    def one(low: float, high: float) -> str:
        if math.isnan(low) or math.isnan(high):
            return DASH
        return f"[{fmt(low, metric, signed)}, {fmt(high, metric, signed)}]"

    return [one(low, high) for low, high in zip(lows, highs, strict=True)]


_NUMBER = re.compile(r"^[-+]?\d[\d.e+-]*( ± [\d.e+-]+)?$|^\[.*\]$|^—$")


def table(frame: pd.DataFrame) -> str:
    # Cells are pre-formatted strings; numparse off so tabulate keeps "0.9000" as written.
    frame = frame.map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))
    numeric = [len(frame) > 0 and frame[c].str.match(_NUMBER).all() for c in frame.columns]
    align = ["right" if n else "left" for n in numeric]
    return frame.to_markdown(index=False, disable_numparse=True, colalign=align)


def pvalue(p: float) -> str:
    if math.isnan(p):
        return DASH
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"
