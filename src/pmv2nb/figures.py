"""Plot functions (DataFrame in, Figure out) and the one helper that saves figures.

Plot functions never write files and never read global state, so tests can call them on small
hand-made frames. :func:`save_figure` is the only place that writes to ``figures/``, always as a
PNG and a PDF pair. Styling is sized for slides and uses a colour-blind-safe palette.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

if not matplotlib.get_backend().lower().startswith(("module://matplotlib_inline", "inline", "nbagg", "widget")):
    matplotlib.use("Agg")  # headless everywhere except inside a live notebook
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

PALETTE = sns.color_palette("colorblind")
WHO_COLOURS = {"self": PALETTE[0], "others": PALETTE[1]}


def use_style() -> None:
    """Readable at workshop slide size."""
    sns.set_theme(context="talk", style="whitegrid", palette=PALETTE, font_scale=0.8)


def save_figure(fig: plt.Figure, name: str, out_dir: str | Path | None = None) -> list[Path]:
    """Write ``fig`` as ``<out_dir>/<name>.png`` and ``.pdf`` (default: the repo's figures/ folder)."""
    if out_dir is None:
        from .config import repo_root
        out_dir = repo_root() / "figures"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    return paths


def _finish(fig: plt.Figure, ax: plt.Axes, title: str, xlabel: str, ylabel: str) -> plt.Figure:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def _bar_counts(ax: plt.Axes, counts: pd.Series, title: str, colour=None) -> None:
    counts = counts.sort_values()
    ax.barh([str(i).replace("_", " ") for i in counts.index], counts.values, color=colour or PALETTE[0])
    ax.set_title(title)
    ax.set_xlabel("questions")
    for y, value in enumerate(counts.values):
        ax.text(value, y, f" {value}", va="center", fontsize="small")


def plot_dataset_overview(questions: pd.DataFrame, top_topics: int = 12) -> plt.Figure:
    """Figure 2 analogue: preference types, scenarios, topics and the who/updated/sensitive flags."""
    use_style()
    fig, axes = plt.subplots(2, 3, figsize=(20, 11))
    _bar_counts(axes[0, 0], questions["pref_type"].value_counts(), "preference type")
    _bar_counts(axes[0, 1], questions["conversation_scenario"].value_counts(), "scenario revealing the preference",
                PALETTE[2])
    _bar_counts(axes[0, 2], questions["topic_preference"].value_counts().head(top_topics),
                f"preference topics (top {top_topics})", PALETTE[4])
    for ax, column, title in ((axes[1, 0], "who", "whose preference"), (axes[1, 1], "updated", "preference updated"),
                              (axes[1, 2], "sensitive_info", "carries private data")):
        _bar_counts(ax, questions[column].astype(str).value_counts(), title, PALETTE[3])
    fig.suptitle(f"What is inside: {len(questions)} questions, {questions['persona_id'].nunique()} personas")
    fig.tight_layout()
    return fig


def plot_history_lengths(tokens: pd.DataFrame) -> plt.Figure:
    """History length in Qwen3 tokens per persona, 32k vs 128k (one dot per history file)."""
    use_style()
    fig, ax = plt.subplots(figsize=(9, 5))
    sns.stripplot(data=tokens, x="size", y="qwen3_tokens", hue="size", order=["32k", "128k"], size=9, ax=ax,
                  legend=False)
    sns.boxplot(data=tokens, x="size", y="qwen3_tokens", order=["32k", "128k"], ax=ax, fill=False, width=0.4,
                color="0.4")
    return _finish(fig, ax, "History lengths", "history variant", "Qwen3 tokens per history")


def plot_evidence_distance(questions: pd.DataFrame) -> plt.Figure:
    """How far back the evidence sits: tokens between the evidence snippet and the query, by variant."""
    use_style()
    long = pd.concat([
        pd.DataFrame({"tokens": questions[f"distance_from_related_snippet_to_query_{size}"].astype("Float64"),
                      "size": size}).dropna()
        for size in ("32k", "128k")
    ])
    fig, ax = plt.subplots(figsize=(10, 5))
    sns.histplot(data=long, x="tokens", hue="size", bins=20, element="step", ax=ax)
    return _finish(fig, ax, "Distance from evidence to query", "tokens from the evidence to the query", "questions")


def plot_length_shortcut(rates: pd.DataFrame) -> plt.Figure:
    """How often 'pick the longest / shortest option' is right, against chance, overall and by who."""
    use_style()
    frame = rates.reset_index().melt(id_vars="who", value_vars=["gold_longest", "gold_shortest"],
                                     var_name="rule", value_name="accuracy")
    frame["rule"] = frame["rule"].map({"gold_longest": "pick longest", "gold_shortest": "pick shortest"})
    fig, ax = plt.subplots(figsize=(9, 5))
    sns.barplot(data=frame, x="who", y="accuracy", hue="rule", ax=ax)
    for i, chance in enumerate(rates["chance"]):
        ax.hlines(chance, i - 0.4, i + 0.4, colors="k", linestyles="--", label="chance" if i == 0 else None)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize="small")
    return _finish(fig, ax, "Option-length shortcut", "", "accuracy of the length rule")


def plot_accuracy(table: pd.DataFrame, group: str = "model", hue: str = "mode", title: str = "Accuracy",
                  chance: float | None = None) -> plt.Figure:
    """Grouped bars of a breakdown table with their 95% bootstrap intervals as error bars."""
    use_style()
    groups = list(dict.fromkeys(table[group].astype(str)))
    hues = list(dict.fromkeys(table[hue].astype(str)))
    width = 0.8 / max(1, len(hues))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, len(hues)) ** 0.5 + 3), 5))
    for h, name in enumerate(hues):
        part = table[table[hue].astype(str) == name]
        part = part.set_index(part[group].astype(str)).reindex(groups)
        xs = [i - 0.4 + width * (h + 0.5) for i in range(len(groups))]
        errors = [(part["accuracy"] - part["ci_low"]).fillna(0), (part["ci_high"] - part["accuracy"]).fillna(0)]
        ax.bar(xs, part["accuracy"].fillna(0), width, yerr=errors, capsize=3, label=name,
               color=PALETTE[h % len(PALETTE)])
    if chance is not None:
        ax.axhline(chance, color="k", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small", loc="upper right")
    return _finish(fig, ax, title, "", "accuracy (95% bootstrap CI)")


CURVE_COLUMNS = ["title", "metric", "step", "value"]


def metric_curves(metrics: pd.DataFrame, columns: dict[str, str], title: str) -> pd.DataFrame:
    """A run's logged ``{column: label}`` metrics as a long (title, metric, step, value) frame; unlogged ones skipped."""
    pieces = [metrics[["step", column]].dropna().rename(columns={column: "value"}).assign(title=title, metric=label)
              for column, label in columns.items() if column in metrics and metrics[column].notna().any()]
    return pd.concat(pieces, ignore_index=True)[CURVE_COLUMNS] if pieces else pd.DataFrame(columns=CURVE_COLUMNS)


def plot_training_curves(metrics: pd.DataFrame, columns: dict[str, str], title: str, ylabel: str) -> plt.Figure:
    """One run's metric columns (``{column: label}``) against the optimizer step, in one panel."""
    fig = plot_training_runs(metric_curves(metrics, columns, title), suptitle=None, titles=[title])
    fig.axes[0].set_ylabel(ylabel)
    return fig


# ---- paper figures (notebook 06): paper values beside your own runs -------------------------------------------

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
    ci_high and optionally provenance (listed under the plot). ``ranges``: claim, low, high, drawn as a light band (the paper's overall range).
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
    handles = [_patch(color=_GRPO_COLOUR), _patch(facecolor=_lighter(_GRPO_COLOUR), linestyle="dashed", edgecolor="0.1"),
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


def plot_training_runs(curves: pd.DataFrame, suptitle: str | None = "Training curves of your runs",
                       titles: list[str] | None = None) -> plt.Figure:
    """Training curves from several runs: one panel per run (``title``), one line per ``metric`` against ``step``."""
    use_style()
    titles = titles or list(dict.fromkeys(curves["title"]))
    fig, axes = plt.subplots(1, max(1, len(titles)), figsize=(6.5 * max(1, len(titles)), 4.8), squeeze=False)
    for ax, title in zip(axes[0], titles):
        part = curves[curves["title"] == title]
        for c, metric in enumerate(dict.fromkeys(part["metric"])):
            line = part[part["metric"] == metric].groupby("step", as_index=False)["value"].last()
            ax.plot(line["step"], line["value"], marker="o", markersize=4, label=metric,
                    color=PALETTE[c % len(PALETTE)], gid=f"curve|{title}|{metric}")
        if len(part):
            ax.legend(fontsize="x-small")
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("optimizer step")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
