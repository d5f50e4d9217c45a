"""The probe's figure: normalized rank through depth, one panel per measure, one line per probed network."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from rexnet.io import atomic_path

from ..errors import StudyError


def plot_probe(
    tables: Mapping[str, pd.DataFrame],
    path: str | os.PathLike,
    *,
    measures: Sequence[str] | None = None,
    relative: bool = False,
    title: str = "",
) -> Path:
    """Returns `path` after drawing normalized rank through depth, one panel per measure, one line per table.

    `measures` defaults to rank and the measure each table's drops were flagged under (`table.attrs`).
    Capped layers (fewer columns than channels) are left out. Flagged layers (the largest drops and the layers
    that cap them) are marked and named; x is the layer index, or relative depth in [0, 1]
    when `relative` (to compare networks of different depth). Written atomically as PNG; the figure is a
    `matplotlib.figure.Figure` of its own, so no pyplot state or backend is touched.
    """
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib takes ~1 s to import

    if measures is None:
        flags = [t.attrs["flag_measure"] for t in tables.values() if "flag_measure" in t.attrs]
        measures = list(dict.fromkeys(["rank", *flags]))
    fig = Figure(figsize=(6.5 * len(measures), 4.2))
    axes = fig.subplots(1, len(measures), squeeze=False)
    for ax, measure in zip(axes[0], measures):
        for i, (label, table) in enumerate(tables.items()):
            col = "normalized_" + measure
            if col not in table:
                raise StudyError(f"the table has no {measure}; probe it with that measure")
            depth = pd.Series(range(len(table)), dtype=float)
            x = depth / max(1, len(table) - 1) if relative else depth
            ax.plot(x, table[col].where(~table["capped"]), color=f"C{i}", lw=1, alpha=0.85, label=label)
            if not relative and measure == table.attrs.get("flag_measure"):
                flagged = table[table["flagged"]]
                ax.scatter(
                    x[flagged.index], flagged[col], color="red", zorder=3, s=25, label="largest drops, their caps"
                )
                for j, r in flagged.iterrows():
                    ax.annotate(
                        r["name"], (x[j], r[col]), fontsize=7, rotation=20, xytext=(3, -10), textcoords="offset points"
                    )
        ax.set(
            xlabel="relative depth" if relative else "layer (execution order)",
            ylabel=f"{measure} / channels",
            ylim=(0, 1.05),
            title=measure,
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
