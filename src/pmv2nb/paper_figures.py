"""The paper's result figures (Fig. 4 frontier, Fig. 5 breakdown, Fig. 6 Qwen3-4B family).

Each draws the values the paper states beside your own runs, with shared styling: one colour per
model across figures, dark grey for your runs, hatched slots where the paper gives a value only
as an image. Style and saving come from :mod:`pmv2nb.plots`.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .plots import PALETTE, use_style

FRONTIER_MODELS = ("GPT-5-Chat", "GPT-5-mini", "GPT-5-nano", "GPT-4.1", "GPT-4.1-mini", "o4-mini")
FAMILY = ("Qwen3-4B base", "Qwen3-4B-SFT", "Qwen3-4B-GRPO", "GRPO MCQ-only", "GRPO open-only", "Agentic memory",
          "GPT-5-Chat")
_GRPO_COLOUR = PALETTE[9]
MODEL_COLOURS = {
    **dict(zip(FRONTIER_MODELS, PALETTE[:6])),
    "Qwen3-4B base": PALETTE[7], "Qwen3-4B-SFT": PALETTE[8], "Qwen3-4B-GRPO": _GRPO_COLOUR,
    "GRPO MCQ-only": sns.blend_palette([_GRPO_COLOUR, "white"], 5)[2],
    "GRPO open-only": sns.blend_palette([_GRPO_COLOUR, "white"], 5)[3],
    "Agentic memory": PALETTE[6],
}
YOURS = "0.25"  # your runs are always dark grey, so they never pass for a paper value
MISSING_NOTE = "hatched: the paper shows this value only in a figure image, so it is unknown here"
YOURS_NOTE = ("dark bars: your runs, labelled with their profile and data; tiny-profile runs use synthetic data and a "
              "random-weight model, so they test the code, not the science")


def model_colour(name: str):
    """The same colour for a model in every figure (unknown names get a stable palette colour)."""
    if name in MODEL_COLOURS:
        return MODEL_COLOURS[name]
    return PALETTE[sum(map(ord, name)) % len(PALETTE)]


def _lighter(colour, amount: float = 0.45):
    return sns.blend_palette([colour, "white"], 100)[int(amount * 99)]


def _missing_bar(ax: plt.Axes, x: float, width: float, gid: str, top: float = 100.0) -> None:
    """An empty hatched slot with a question mark: there is a value in the paper, but not one we can state."""
    ax.bar(x, top, width, fill=False, hatch="//", edgecolor="0.75", linewidth=0.6, gid=gid, zorder=1)
    ax.text(x, 2, "?", ha="center", va="bottom", fontsize="small", color="0.4")


def _value_bar(ax: plt.Axes, x: float, value: float, width: float, colour, gid: str, low: float | None = None,
               high: float | None = None, linestyle: str = "solid") -> None:
    error = None
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        error = [[max(0.0, value - low)], [max(0.0, high - value)]]
    ax.bar(x, value, width, color=colour, yerr=error, capsize=3, gid=gid, edgecolor="0.1", linewidth=0.6,
           linestyle=linestyle, zorder=2)
    ax.text(x, value + (error[1][0] if error else 0) + 1.5, f"{value:.1f}", ha="left", va="center",
            fontsize="x-small", rotation=90, rotation_mode="anchor")


def _legend_and_notes(fig: plt.Figure, handles: list, labels: list[str], *lines: str) -> None:
    """One legend under the panels, then the provenance notes under it (so nothing hides a bar)."""
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 4),
               fontsize="x-small", frameon=False)
    rows = math.ceil(len(labels) / 4)
    fig.text(0.01, -0.045 * rows - 0.01, "\n".join(lines), ha="left", va="top", fontsize="x-small", color="0.3")


def _patch(**style) -> plt.Rectangle:
    return plt.Rectangle((0, 0), 1, 1, **style)


MISSING_PATCH = {"fill": False, "hatch": "//", "edgecolor": "0.6"}


def _lookup(table: pd.DataFrame | None, column: str, **keys) -> pd.Series | None:
    if table is None or not len(table):
        return None
    mask = pd.Series(True, index=table.index)
    for key, value in keys.items():
        mask &= table[key].astype(str) == str(value)
    found = table[mask]
    return None if found.empty or pd.isna(found[column].iat[0]) else found.iloc[0]


def plot_frontier(paper: pd.DataFrame, ours: pd.DataFrame | None = None, ranges: pd.DataFrame | None = None,
                  chance: float | None = 25.0) -> plt.Figure:
    """Figure 4: accuracy (%) per model at 32k and 128k, MCQ and open-ended, paper first, then your runs.

    ``paper``: model, size, mode, accuracy (NaN = unknown). ``ours``: label, size, mode, accuracy, ci_low,
    ci_high and optionally provenance (listed under the plot). ``ranges``: claim, low, high, drawn as a light band
    (the paper's overall range).
    """
    use_style()
    models = list(dict.fromkeys(paper["model"]))
    yours = list(dict.fromkeys(ours["label"])) if ours is not None and len(ours) else []
    positions = list(range(len(models))) + [len(models) + 0.5 + k for k in range(len(yours))]
    sizes, width = ("32k", "128k"), 0.38
    fig, axes = plt.subplots(1, 2, figsize=(max(12.0, 1.5 * len(positions) + 4), 6.5), sharey=True)
    for ax, (mode, title) in zip(axes, (("mcq", "multiple choice"), ("open", "open-ended"))):
        if ranges is not None and len(ranges):
            band = ranges.iloc[0]
            ax.axhspan(band["low"], band["high"], color="0.9", zorder=0,
                       label=f"paper: {band['claim']} {band['low']:.0f}-{band['high']:.0f}%")
        for x, model in zip(positions, models):
            for j, size in enumerate(sizes):
                at, gid = x + (j - 0.5) * width, f"paper|{model}|{size}|{mode}"
                row = _lookup(paper, "accuracy", model=model, size=size, mode=mode)
                colour = model_colour(model) if size == "32k" else _lighter(model_colour(model))
                if row is None:
                    _missing_bar(ax, at, width, "missing|" + gid)
                else:
                    _value_bar(ax, at, row["accuracy"], width, colour, gid)
        for x, label in zip(positions[len(models):], yours):
            for j, size in enumerate(sizes):
                row = _lookup(ours, "accuracy", label=label, size=size, mode=mode)
                if row is not None:
                    _value_bar(ax, x + (j - 0.5) * width, row["accuracy"], width, YOURS if size == "32k" else "0.6",
                               f"yours|{label}|{size}|{mode}", row["ci_low"], row["ci_high"])
        if yours:
            ax.axvline(len(models) - 0.25, color="0.5", linestyle=":", linewidth=1)
        if chance is not None and mode == "mcq":
            ax.axhline(chance, color="k", linestyle="--", linewidth=1, label="random guess")
        ax.set_xticks(positions, models + yours, rotation=35, ha="right", fontsize="small")
        ax.set_ylim(0, 100)
        ax.set_title(title)
    axes[0].set_ylabel("accuracy (%)")
    handles = [_patch(color="0.45"), _patch(color=_lighter("0.45")), _patch(**MISSING_PATCH)]
    labels = ["32k history (darker)", "128k history (lighter)", "unknown (figure image only)"]
    extra_handles, extra_labels = axes[0].get_legend_handles_labels()
    fig.suptitle("Figure 4: frontier models on PersonaMem-v2" + (" (paper, then your runs)" if yours else " (paper)"))
    fig.tight_layout()
    _legend_and_notes(fig, handles + extra_handles, labels + extra_labels,
                      "Paper values: results/paper/figure4_frontier.csv (from the paper's text).", MISSING_NOTE,
                      *([YOURS_NOTE + "; error bars: 95% bootstrap CI"] + _provenance_lines(ours)
                        if yours else []))
    return fig


def plot_breakdown(paper: pd.DataFrame, ours: pd.DataFrame | None = None) -> plt.Figure:
    """Figure 5: mean accuracy (%) +- spread across models per category, one panel per breakdown.

    ``paper`` and ``ours`` share the columns panel, category, mean and sd; ``ours`` adds ``runs``, how
    many (model, size, mode) results its mean and spread summarise.
    """
    use_style()
    panels = list(dict.fromkeys(paper["panel"]))
    has_ours = ours is not None and len(ours) > 0
    width = 0.38 if has_ours else 0.6
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 6), sharey=True, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        categories = list(dict.fromkeys(paper.loc[paper["panel"] == panel, "category"]))
        for i, category in enumerate(categories):
            x = i - width / 2 if has_ours else i
            row = _lookup(paper, "mean", panel=panel, category=category)
            gid = f"paper|{panel}|{category}"
            if row is None:
                _missing_bar(ax, x, width, "missing|" + gid)
            else:
                sd = 0.0 if pd.isna(row["sd"]) else row["sd"]
                _value_bar(ax, x, row["mean"], width, PALETTE[0], gid, row["mean"] - sd, row["mean"] + sd)
            mine = _lookup(ours, "mean", panel=panel, category=category) if has_ours else None
            if mine is not None:
                sd = 0.0 if pd.isna(mine["sd"]) else mine["sd"]
                _value_bar(ax, x + width, mine["mean"], width, YOURS, f"yours|{panel}|{category}",
                           mine["mean"] - sd, mine["mean"] + sd)
        ax.set_xticks(range(len(categories)), categories, rotation=25, ha="right", fontsize="small")
        ax.set_ylim(0, 100)
        ax.set_title(panel)
    axes[0][0].set_ylabel("accuracy (%), mean +- sd")
    handles, labels = [_patch(color=PALETTE[0])], ["paper: mean +- sd over frontier models and both sizes"]
    if has_ours:
        runs = int(ours["runs"].max()) if "runs" in ours else 0
        handles.append(_patch(color=YOURS))
        labels.append(f"yours: mean +- sd over up to {runs} (model, size, mode) run(s)")
    fig.suptitle("Figure 5: accuracy by preference type, change, owner and scenario")
    fig.tight_layout()
    _legend_and_notes(fig, handles, labels, "Paper values: results/paper/figure5_breakdown.csv (the paper's text).",
                      *([YOURS_NOTE] if has_ours else []))
    return fig


def plot_family(paper: pd.DataFrame, ours: pd.DataFrame | None = None, efficiency: pd.DataFrame | None = None,
                tokens: pd.DataFrame | None = None, chance: float | None = 25.0) -> plt.Figure:
    """Figure 6: the Qwen3-4B family against GPT-5-Chat, MCQ and open-ended, plus input tokens per answer.

    ``paper``: model, mode, accuracy, status (reported / derived / unknown). ``ours``: model (the family
    member it stands for), mode, accuracy, ci_low, ci_high, label. ``efficiency``: the paper's quantity /
    value table. ``tokens``: setting ("long context" / "memory"), tokens, label (your mean input tokens).
    """
    use_style()
    members = [m for m in FAMILY if m in set(paper["model"])] + \
        [m for m in dict.fromkeys(paper["model"]) if m not in FAMILY]
    has_ours = ours is not None and len(ours) > 0
    width = 0.38 if has_ours else 0.6
    fig, axes = plt.subplots(1, 3, figsize=(max(20.0, 2.2 * len(members) + 6), 7),
                             gridspec_kw={"width_ratios": [len(members), len(members), 3]})
    for ax, (mode, title) in zip(axes[:2], (("mcq", "multiple choice"), ("open", "open-ended"))):
        for i, member in enumerate(members):
            x, gid = (i - width / 2 if has_ours else i), f"paper|{member}|{mode}"
            row = _lookup(paper, "accuracy", model=member, mode=mode)
            if row is None:
                _missing_bar(ax, x, width, "missing|" + gid)
            else:
                derived = row.get("status") == "derived"
                _value_bar(ax, x, row["accuracy"], width, model_colour(member), ("derived|" if derived else "") + gid,
                           linestyle="dashed" if derived else "solid")
            mine = _lookup(ours, "accuracy", model=member, mode=mode) if has_ours else None
            if mine is not None:
                _value_bar(ax, x + width, mine["accuracy"], width, YOURS, f"yours|{member}|{mode}", mine["ci_low"],
                           mine["ci_high"])
        if chance is not None and mode == "mcq":
            ax.axhline(chance, color="k", linestyle="--", linewidth=1, label="random guess")
        ax.set_xticks(range(len(members)), [_member_tick(m, ours) for m in members], rotation=35, ha="right",
                      fontsize="small")
        ax.set_ylim(0, 100)
        ax.set_title(title)
        ax.set_ylabel("accuracy (%)")
    _plot_answer_tokens(axes[2], efficiency, tokens)
    fig.suptitle("Figure 6: Qwen3-4B trained with SFT, GRPO and as a memory agent, against GPT-5-Chat")
    fig.tight_layout()
    handles = [_patch(color=_GRPO_COLOUR),
               _patch(facecolor=_lighter(_GRPO_COLOUR), linestyle="dashed", edgecolor="0.1"),
               _patch(**MISSING_PATCH)]
    labels = ["paper (one colour per model)", "derived from a stated difference", "unknown (figure image only)"]
    if has_ours:
        handles.append(_patch(color=YOURS))
        labels.append("yours (95% bootstrap CI)")
    extra_handles, extra_labels = axes[0].get_legend_handles_labels()
    _legend_and_notes(fig, handles + extra_handles, labels + extra_labels,
                      "Paper values: results/paper/figure6_qwen3_4b.csv and efficiency.csv (the paper's text).",
                      MISSING_NOTE, *([YOURS_NOTE] + _provenance_lines(ours) if has_ours else []))
    return fig


def _provenance_lines(ours: pd.DataFrame) -> list[str]:
    """One line per run of yours: its label and where its numbers came from."""
    if "provenance" not in ours:
        return []
    return [f"{row.label}: {row.provenance}" for row in ours.drop_duplicates("label").itertuples()]


def _member_tick(member: str, ours: pd.DataFrame | None) -> str:
    """The family member, and under it which of your models stands in for it."""
    mine = _lookup(ours, "label", model=member) if ours is not None and "label" in ours else None
    return member if mine is None else f"{member}\n({mine['label']})"


def _plot_answer_tokens(ax: plt.Axes, efficiency: pd.DataFrame | None, tokens: pd.DataFrame | None) -> None:
    """Input tokens the answering call reads: the whole history vs the memory notes (log scale)."""
    bars: list[tuple[str, float, object, str]] = []
    if efficiency is not None and len(efficiency):
        values = dict(zip(efficiency["quantity"], efficiency["value"]))
        history = next((v for k, v in values.items() if k.startswith("history")), math.nan)
        memory = next((v for k, v in values.items() if k.startswith("memory")), math.nan)
        bars += [("paper: long context", history, MODEL_COLOURS["Qwen3-4B-GRPO"], "paper|long context"),
                 ("paper: memory", memory, MODEL_COLOURS["Agentic memory"], "paper|memory")]
    if tokens is not None and len(tokens):
        for setting in ("long context", "memory"):
            row = _lookup(tokens, "tokens", setting=setting)
            if row is not None:
                bars.append((f"yours: {setting}\n({row['label']})", row["tokens"], YOURS, f"yours|{setting}"))
    for i, (label, value, colour, gid) in enumerate(bars):
        if pd.isna(value):
            _missing_bar(ax, i, 0.6, "missing|" + gid, top=1e5)
            continue
        ax.bar(i, value, 0.6, color=colour, gid=gid, edgecolor="0.1", linewidth=0.6)
        ax.text(i, value * 1.1, f"{value:,.0f}", ha="center", va="bottom", fontsize="x-small")
    for first in range(0, len(bars) - 1, 2):
        full, memory = bars[first][1], bars[first + 1][1]
        if not (pd.isna(full) or pd.isna(memory)):
            ax.text(first + 1, memory * 4, f"{full / memory:.1f}x\nfewer", ha="center", fontsize="small",
                    fontweight="bold", gid=f"ratio|{bars[first + 1][3]}")
    ax.set_yscale("log")
    ax.set_ylim(10, 3e5)
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], rotation=35, ha="right", fontsize="x-small")
    ax.set_title("input tokens per answer")
    ax.set_ylabel("tokens (log scale)")
