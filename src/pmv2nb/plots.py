"""Plots the notebooks draw for themselves, and the style and save helpers every figure shares.

Plot functions take a DataFrame and return a Figure; they never write files or read global state,
so tests can call them on small hand-made frames. :func:`save_figure` is the only writer of figure
files, always a PNG and PDF pair, into the folder its caller names (a profile's ``figures_dir``). Styling
is sized for slides, in a colour-blind-safe palette.
Importing this module leaves the matplotlib backend alone: headless runs set ``MPLBACKEND=Agg`` or
let matplotlib fall back to Agg when there is no display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd
import seaborn as sns

PALETTE = sns.color_palette("colorblind")
WHO_COLOURS = {"self": PALETTE[0], "others": PALETTE[1]}


def use_style() -> None:
    """Readable at workshop slide size."""
    sns.set_theme(context="talk", style="whitegrid", palette=PALETTE, font_scale=0.8)


def save_figure(fig: plt.Figure, name: str, out_dir: str | Path) -> list[Path]:
    """Write ``fig`` as ``<out_dir>/<name>.png`` and ``.pdf``.

    ``out_dir`` has no default: a fixed folder here would ignore where the profile says figures go, so callers
    pass ``profile.path("figures")`` (or their own folder).
    """
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
    # real labels mix case ("Health", "health"): count them by the loader's normalised key
    topics = questions["topic_preference_key"] if "topic_preference_key" in questions else questions["topic_preference"]
    _bar_counts(axes[0, 2], topics.value_counts().head(top_topics),
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


# The headline curves of each training stage (run.json's "stage"), with their labels: notebooks 03-05 and the
# shelf's training figure draw the same ones.
STAGE_METRICS = {
    "sft": {"loss": "training loss", "eval_loss": "validation loss"},
    "grpo": {"reward": "mean reward", "rewards/mcq_reward/mean": "MCQ reward",
             "rewards/open_reward/mean": "open-ended reward"},
    "memory-grpo": {"reward": "mean reward", "rewards/mcq_reward/mean": "MCQ reward",
                    "rewards/open_reward/mean": "open-ended reward", "memory/capped_rate": "rewrites cut by the cap"},
}


def metric_curves(metrics: pd.DataFrame, columns: dict[str, str], title: str) -> pd.DataFrame:
    """A run's logged ``{column: label}`` metrics as a long (title, metric, step, value) frame; unlogged ones
    skipped."""
    pieces = [metrics[["step", column]].dropna().rename(columns={column: "value"}).assign(title=title, metric=label)
              for column, label in columns.items() if column in metrics and metrics[column].notna().any()]
    return pd.concat(pieces, ignore_index=True)[CURVE_COLUMNS] if pieces else pd.DataFrame(columns=CURVE_COLUMNS)


def plot_training_curves(metrics: pd.DataFrame, columns: dict[str, str], title: str, ylabel: str) -> plt.Figure:
    """One run's metric columns (``{column: label}``) against the optimizer step, in one panel."""
    fig = plot_training_runs(metric_curves(metrics, columns, title), suptitle=None, titles=[title])
    fig.axes[0].set_ylabel(ylabel)
    return fig


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
