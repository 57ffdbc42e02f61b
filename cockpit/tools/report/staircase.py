"""The report's PNG: every row's val_bpb, coloured by status, and the running best as
a staircase (matplotlib's Agg canvas, imported only when drawing: no pyplot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from cockpit.tools.report.model import Report


PNG_SIZE_IN, PNG_DPI = (12, 6), 100  # 1200 x 600 pixels
KEEP_COLOR, DISCARD_COLOR, CRASH_COLOR = "#2ca02c", "#7f7f7f", "#d62728"


def draw_staircase(report: Report, path: Path) -> None:
    """Draw the val_bpb staircase of ``report`` as a 1200x600 PNG at ``path``: kept
    experiments green with their descriptions, the running best (the kept
    val_bpb in force) as a step line, discards as faded dots (worse than the
    baseline: triangles on the top edge), rows without a val_bpb as red crosses
    on the bottom edge. Imports matplotlib (Agg canvas) here, not at start-up."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=PNG_SIZE_IN, dpi=PNG_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rows = report.rows
    kept = [r for r in rows if r.status == "keep" and r.val_bpb is not None]
    discards = [r for r in rows if r.status != "keep" and r.val_bpb is not None]
    unscored = [r for r in rows if r.val_bpb is None]
    top, bottom = value_range([r.val_bpb for r in kept], [r.val_bpb for r in discards])
    gains = sum(1 for r in kept if r.delta is not None and r.delta < 0 and not r.reverted)
    title = f"{report.tag}: {len(rows)} experiments, {gains} kept improvement{'' if gains == 1 else 's'}"
    if top is None:
        ax.text(0.5, 0.5, f"no val_bpb to plot: all {len(rows)} experiments crashed", ha="center", va="center",
                transform=ax.transAxes, fontsize=14, color=CRASH_COLOR)
    else:
        margin = max((top - bottom) * 0.15, abs(top) * 1e-3)
        low, high = bottom - margin, top + margin  # every discard below the best is in view
        shown = [r for r in discards if r.val_bpb <= high]
        above = [r for r in discards if r.val_bpb > high]
        if shown:
            ax.scatter([r.experiment for r in shown], [r.val_bpb for r in shown], s=28, color=DISCARD_COLOR,
                       alpha=0.45, label=f"discard ({len(shown)})", zorder=2)
        if above:
            edge = high - margin * 0.08
            ax.scatter([r.experiment for r in above], [edge] * len(above), marker="^", s=36,
                       color=DISCARD_COLOR, alpha=0.45, label=f"discard above the plot ({len(above)})", zorder=2)
            for r in above:
                ax.annotate(f"{r.val_bpb:.4f}", (r.experiment, edge), xytext=(0, -12), textcoords="offset points",
                            fontsize=7, ha="center", color=DISCARD_COLOR)
        if unscored:
            ax.scatter([r.experiment for r in unscored], [low + margin * 0.08] * len(unscored), marker="x", s=40,
                       color=CRASH_COLOR, label=f"crash or no val_bpb ({len(unscored)})", zorder=3)
        steps = [(r.experiment, r.incumbent) for r in rows if r.incumbent is not None]
        if steps:
            xs, ys = zip(*steps)
            ax.step(xs, ys, where="post", color=KEEP_COLOR, linewidth=2, label="running best (kept)", zorder=3)
            sigma = report.noise.sigma if report.noise else None
            if sigma:
                ax.fill_between(xs, [y - sigma for y in ys], [y + sigma for y in ys], step="post",
                                color=KEEP_COLOR, alpha=0.12, label=f"± noise floor σ = {sigma:.4f}")
        if kept:
            ax.scatter([r.experiment for r in kept], [r.val_bpb for r in kept], s=56, color=KEEP_COLOR,
                       edgecolors="black", linewidths=0.6, label=f"keep ({len(kept)})", zorder=4)
            for r in kept:
                text = r.description if len(r.description) <= 40 else r.description[:39] + "…"
                ax.annotate(text, (r.experiment, r.val_bpb), xytext=(6, 6), textcoords="offset points",
                            fontsize=8, rotation=20, color="#1a5e1a", alpha=0.9)
        ax.set_ylim(low, high)
        numbers = [r.experiment for r in rows]
        ax.set_xlim(min(numbers) - 0.5, max(numbers) + 0.75)
        ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
        if report.baseline and report.best:
            title += f"\nval_bpb {report.baseline.val_bpb:.6f} → {report.best.val_bpb:.6f}"
            if report.relative_improvement is not None:
                title += f" ({-report.relative_improvement:+.2f} %)"
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Experiment #", fontsize=12)
    ax.set_ylabel("Validation BPB (lower is better)", fontsize=12)
    ax.set_title(title, fontsize=13)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")


def value_range(kept: list[float], discards: list[float]) -> tuple[Optional[float], Optional[float]]:
    """(top, bottom) val_bpb the plot spans, before its margin: from the highest kept
    value down to the lowest scored one, kept or discarded (a discard that landed
    below the running best, within the noise, is drawn where it fell); discards
    above the highest keep are drawn at the top edge instead. Without keeps, the
    discards' span; (None, None) without any value."""
    if kept:
        return max(kept), min(kept + discards)
    if discards:
        return max(discards), min(discards)
    return None, None
