"""The window's colours in one place, and its stylesheet (resources/styles/workbench.qss,
which holds the colours of styled widgets by object name).

Text colours are "#rrggbb" strings (usable in QColor, style sheets and rich text); plot
colours are (r, g, b[, a]) tuples, the form pyqtgraph takes.
"""
from __future__ import annotations

from workbench.resources import resource_path

# ---------------------------------------------------------------- text, marks, banners
GOOD = "#15803d"  # passed, fits, a right prediction
BAD = "#b91c1c"  # does not fit, cannot be read, a wrong prediction
ERROR = "#dc2626"  # error marks, failed exports, a broken row's shape
ERROR_BACKGROUND = "#fde8e8"  # a broken row in the stack
WARNING = "#b45309"  # a deprecated format
LOCKED = "#92400e"  # the lock note while a run holds the model
MUTED = "#8a8f98"  # secondary text: positions, parameter counts, "not verified"
MUTED_TEXT = "#6b7280"  # captions and placeholders on white
TEXT = "#111827"
SOFT_TEXT = "#374151"
FRAME = "#d1d5db"

# ---------------------------------------------------------------- start page lists
ROW_HOVER = "#f3f4f6"
ROW_SELECTED = "#dbe7fe"
ROW_RULE = "#eef0f3"  # the line between two rows
FOCUS = "#2563eb"  # the frame of the list that has the keyboard

# ---------------------------------------------------------------- icons and badges
BADGE_TEXT = "white"
FROZEN = "#2563eb"  # the padlock of frozen layers
CATEGORY_COLORS = {
    "Dense": "#2563eb", "Convolution": "#7c3aed", "Pooling": "#0d9488", "Normalization": "#d97706",
    "Activation": "#16a34a", "Regularization": "#64748b", "Reshape": "#a16207", "Sequence": "#db2777",
    "Composite": "#4f46e5", "Backbones": "#0f766e",
}

# ---------------------------------------------------------------- memory gauges
GAUGE_FRAME = "#9ca3af"
GAUGE_BACKGROUND = "#f3f4f6"
GAUGE_PEAK = TEXT
GAUGE_PROCESS = "#2563eb"
GAUGE_SYSTEM = "#64748b"
GAUGE_DEVICE = "#16a34a"

# ---------------------------------------------------------------- confusion matrix (r, g, b)
MATRIX_EMPTY = (255, 255, 255)
MATRIX_RIGHT = (29, 78, 216)  # the diagonal
MATRIX_WRONG = (220, 38, 38)
MATRIX_STRONG_TEXT = "white"  # counts on a dark cell

# ---------------------------------------------------------------- prediction bars
PREDICTION_BAR = "#93c5fd"
PREDICTION_TOP = "#2563eb"  # the most probable class
PREDICTION_TRUE = GOOD  # the true class's mark
PREDICTION_TRACK = "#f3f4f6"
LATENCY_BAR = "#fde4c8"  # a row's forward + backward time in the stack (text stays readable over it)
LATENCY_TOP = "#fdba74"  # the three slowest rows

# ---------------------------------------------------------------- live plots (r, g, b[, a])
PLOT_BACKGROUND = "w"
PLOT_RAW = (37, 99, 235, 70)  # loss per step
PLOT_SMOOTH = (29, 78, 216)
PLOT_VAL = (234, 88, 12)
PLOT_ACC = (22, 163, 74)
PLOT_LR = (124, 58, 237)
PLOT_MARK = (220, 38, 38)  # freezes and learning-rate changes
PLOT_GRID = (229, 231, 235)
PLOT_LEGEND = (255, 255, 255, 190)
PLOT_OVERLAY_LEGEND = (255, 255, 255, 210)
PLOT_LABEL_FILL = (255, 255, 255, 200)
PLOT_OVERLAYS = [(100, 116, 139), (190, 120, 140), (180, 150, 80), (90, 150, 150), (130, 120, 190)]  # earlier runs


def stylesheet() -> str:
    """The window's style sheet; empty when the file is missing (the window still works)."""
    path = resource_path("styles", "workbench.qss")
    return path.read_text(encoding="utf-8") if path.is_file() else ""
