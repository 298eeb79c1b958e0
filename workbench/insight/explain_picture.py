"""An explanation as a picture: the heat map blended over the input (``overlay``, also what
the window shows under its opacity slider) and the whole figure as a PNG (``png_bytes``,
``write_png``): the input, the overlay and the class probability bars for an image; the
feature bars and the probability bars for a table row.

Drawn with matplotlib's object API on the Agg canvas (no pyplot: no global figure state, safe
off the main thread); the file is written atomically through ``workbench.fileio``.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from workbench import fileio
from workbench.insight.explain import Explanation

COLORMAP = "jet"  # Grad-CAM's usual map: blue (nothing) to red (the evidence)
TOP_CLASSES = 10  # probability bars shown at most
TOP_FEATURES = 15  # feature bars shown at most
DPI = 100


def heat_colors(heat: np.ndarray) -> np.ndarray:
    """(H, W) values in 0..1 as (H, W, 3) uint8 colours of ``COLORMAP``."""
    from matplotlib import colormaps

    rgba = colormaps[COLORMAP](np.clip(np.asarray(heat, dtype=np.float32), 0, 1))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float) -> np.ndarray:
    """The heat map over the input picture: (H, W, 3) uint8, ``alpha`` (0..1) the heat map's
    opacity, stronger where the map is stronger so cold regions keep the input visible."""
    picture = np.asarray(image, dtype=np.float32)
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=2)
    colors = heat_colors(heat).astype(np.float32)
    weight = float(np.clip(alpha, 0, 1)) * (0.35 + 0.65 * np.clip(heat, 0, 1))[..., None]
    return np.ascontiguousarray((picture * (1 - weight) + colors * weight).round().clip(0, 255).astype(np.uint8))


def title(ex: Explanation) -> str:
    true = f", true {ex.true}" if ex.true is not None else ""
    return f"{ex.what}: predicted {ex.predicted}{true}"


def png_bytes(ex: Explanation, alpha: float = 0.5) -> bytes:
    """The figure as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    picture = ex.image is not None and ex.heat is not None
    fig = Figure(figsize=(11, 3.8) if picture else (10, 4.2), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.suptitle(title(ex), fontsize=12)
    if picture:
        grid = fig.add_gridspec(1, 3, width_ratios=[1, 1, 1.5], wspace=0.25)
        shown = ex.image if ex.image.ndim == 3 else np.repeat(ex.image[..., None], 3, axis=2)
        ax = fig.add_subplot(grid[0])
        ax.imshow(shown, interpolation="nearest")
        ax.set_title("input", fontsize=10)
        ax.axis("off")
        ax = fig.add_subplot(grid[1])
        ax.imshow(overlay(ex.image, ex.heat, alpha), interpolation="nearest")
        ax.set_title(f"{ex.method} for {ex.target}" + (f"\n{ex.layer}" if ex.layer else ""), fontsize=9)
        ax.axis("off")
        bars = fig.add_subplot(grid[2])
    else:
        grid = fig.add_gridspec(1, 2, width_ratios=[1.3, 1], wspace=0.55)
        _feature_bars(fig.add_subplot(grid[0]), ex)
        bars = fig.add_subplot(grid[1])
    _probability_bars(bars, ex)
    if ex.note:
        fig.text(0.01, 0.01, ex.note, fontsize=8, color="#555555")
    fig.subplots_adjust(left=0.06 if picture else 0.2, right=0.97, top=0.82, bottom=0.12)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_png(ex: Explanation, path: str | Path, alpha: float = 0.5) -> None:
    """Write the figure to ``path`` atomically (an OS error is a WorkbenchError naming it)."""
    fileio.write_bytes(path, png_bytes(ex, alpha))


def _probability_bars(ax, ex: Explanation) -> None:
    classes = ex.prediction.classes[:TOP_CLASSES]
    names = [name for name, _ in classes][::-1]
    values = [100 * p for _, p in classes][::-1]
    colors = ["#2a7ab0" if name == ex.predicted else "#9bbfd8" for name in names]
    ax.barh(range(len(names)), values, color=colors)
    ax.set_yticks(range(len(names)), [f"{n}  (true)" if n == ex.true else n for n in names], fontsize=9)
    ax.set_xlim(0, 100)
    ax.set_xlabel("probability, %", fontsize=9)
    ax.set_title(f"top {len(classes)} of {len(ex.prediction.classes)} classes", fontsize=10)
    for y, v in enumerate(values):
        ax.text(min(v + 1, 80), y, f"{v:.1f}%", va="center", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)


def _feature_bars(ax, ex: Explanation) -> None:
    shown = ex.features[:TOP_FEATURES]
    names = [name for name, _ in shown][::-1]
    values = [v for _, v in shown][::-1]
    ax.barh(range(len(names)), values, color=["#c0392b" if v < 0 else "#27864a" for v in values])
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.axvline(0, color="#777777", linewidth=0.8)
    more = f" (top {len(shown)} of {len(ex.features)})" if len(ex.features) > len(shown) else ""
    ax.set_title(f"{ex.method} for {ex.target}{more}", fontsize=10)
    ax.set_xlabel("attribution (green: for, red: against)", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
