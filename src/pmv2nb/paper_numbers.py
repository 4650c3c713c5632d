"""The paper's reported numbers, read from the small tables in ``results/paper/``.

The tables hold what the paper states in its text (abstract, Sec. 4.1-4.3), each value with a
note naming the section or figure it comes from; ``memory_systems`` alone holds third-party
scores the paper does not report, kept as context. A value the paper shows only in a figure image
reads ``unknown`` and becomes NaN here, so plots draw it as missing rather than as a number.
Where the paper states a difference instead of a value (the GRPO ablations), the value is
derived from it and marked so.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .config import repo_root
from .data.columns import DataError

UNKNOWN = "unknown"
# table -> (columns that must hold a number or "unknown", columns that may also be left empty)
TABLES = {
    "figure4_frontier": (("accuracy",), ()),
    "headline_ranges": (("low", "high"), ()),
    "figure5_breakdown": (("mean", "sd"), ()),
    "figure6_qwen3_4b": (("accuracy",), ("delta_vs_grpo",)),
    "efficiency": (("value",), ()),
    "memory_systems": (("accuracy",), ()),
}
GRPO = "Qwen3-4B-GRPO"
ABLATIONS = {"GRPO MCQ-only": ("mcq-only", 1.0), "GRPO open-only": ("open-only", 0.0)}


def paper_dir() -> Path:
    """The reference tables as the repository ships them (tracked in git, read only).

    Deliberately not under a profile's ``results_dir``: that folder is where your runs are written, and moving it
    elsewhere must not leave the paper's numbers behind.
    """
    return repo_root() / "results" / "paper"


def reference_table(name: str, folder: str | Path | None = None) -> pd.DataFrame:
    """One reference table with its number columns as floats (NaN where the paper gives no value).

    ``status`` says whether the row's value is ``reported`` or ``unknown``.

    Every row needs a source note; a cell that is neither a number nor ``unknown`` is an error that
    names the file, the row (1-based, header not counted) and the column.
    """
    if name not in TABLES:
        raise ValueError(f"unknown reference table {name!r}; choose from {', '.join(TABLES)}")
    path = Path(folder or paper_dir()) / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; results/paper/ ships with the repository, restore it with git")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.ParserError as err:
        raise DataError(f"not a well-formed CSV table ({err})", file=str(path)) from None
    required, optional = TABLES[name]
    for column in (*required, *optional, "source"):
        if column not in raw:
            raise DataError("column missing", file=str(path), column=column)
    table = raw.copy()
    for column in (*required, *optional):
        values = []
        for row, cell in enumerate(raw[column], start=1):
            values.append(_number(cell.strip(), column in optional, path, row, column))
        table[column] = values
    for row, note in enumerate(raw["source"], start=1):
        if not note.strip():
            raise DataError("every value needs a source note", file=str(path), row=row, column="source")
    table["status"] = table[required[0]].map(lambda v: UNKNOWN if math.isnan(v) else "reported")
    return table


def _number(cell: str, may_be_empty: bool, path: Path, row: int, column: str) -> float:
    if cell == UNKNOWN or (may_be_empty and cell == ""):
        return math.nan
    try:
        return float(cell)
    except ValueError:
        raise DataError(f"{cell!r} is neither a number nor {UNKNOWN!r}", file=str(path), row=row,
                        column=column) from None


def family_reference(folder: str | Path | None = None) -> pd.DataFrame:
    """Figure 6: the Qwen3-4B family and GPT-5-Chat (32k), with the ablations derived from their stated drops."""
    table = reference_table("figure6_qwen3_4b", folder)
    grpo = table[table["model"] == GRPO].set_index("mode")["accuracy"]
    derived = table["accuracy"].isna() & table["delta_vs_grpo"].notna()
    base = table.loc[derived, "mode"].map(grpo)
    table.loc[derived, "accuracy"] = (base + table.loc[derived, "delta_vs_grpo"]).round(1)
    table.loc[derived, "source"] = [f"derived: {b:.1f} {d:+.1f} ({note})" for b, d, note in
                                    zip(base, table.loc[derived, "delta_vs_grpo"], table.loc[derived, "source"])]
    table.loc[derived, "status"] = "derived"
    frontier = reference_table("figure4_frontier", folder)
    gpt5 = frontier[(frontier["model"] == "GPT-5-Chat") & (frontier["size"] == "32k")]
    return pd.concat([table, gpt5[["model", "mode", "accuracy", "source", "status"]]], ignore_index=True)


def grpo_ablation_table(folder: str | Path | None = None) -> pd.DataFrame:
    """The paper's GRPO comparison: one row per recipe, MCQ and open-ended accuracy in %, NaN when not reported."""
    family = family_reference(folder).set_index(["model", "mode"])
    rows = []
    for model, (recipe, fraction) in {GRPO: ("mixed (80% MCQ)", 0.8), **ABLATIONS}.items():
        rows.append({"recipe": recipe, "mcq_fraction": fraction,
                     "mcq": family.loc[(model, "mcq"), "accuracy"], "open": family.loc[(model, "open"), "accuracy"],
                     "source": "reported" if model == GRPO else "derived from the reported difference"})
    return pd.DataFrame(rows)


def beside_grpo_ablations(measured: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """The paper's GRPO comparison next to measured accuracy (in %).

    ``measured`` has columns checkpoint, mode ("mcq"/"open") and accuracy (0-1); ``labels`` maps the
    paper's recipes ("mixed (80% MCQ)", "mcq-only", "open-only") to the checkpoint labels used there.
    """
    ours = measured.pivot(index="checkpoint", columns="mode", values="accuracy").mul(100).round(1)
    paper = grpo_ablation_table()
    paper["checkpoint"] = paper["recipe"].map(labels)
    paper = paper.set_index("checkpoint")[["mcq", "open"]].rename(columns=lambda task: f"{task} (paper)")
    table = paper.join(ours.rename(columns=lambda task: f"{task} (measured)"))
    return table.reset_index()
