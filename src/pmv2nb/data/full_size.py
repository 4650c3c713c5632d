"""A full-size synthetic dataset for scale work (``pmv2nb mini-data OUT --full-size``): the real row counts.

The embedded mini data is sized for a laptop; what costs time at paper scale (tokenizing 30k-token
histories for 18,549 training rows, chunking them, a 5,000-row evaluation plan) only shows at the
real sizes. This writes the Hub layout with the real split sizes (benchmark 5,000 rows over 200
personas, train 18,549 over 800, val 2,061 over 735), every split shuffled, 32k histories of about
30k Qwen3 tokens and 128k ones of about 120k, from the mini generator's personas and sessions,
padded with its unrelated filler sessions. Text only (the multimodal twin doubles the size and no
scale measurement reads it). Deterministic for a seed; not committed (about 2 GB).
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

from ..messages import content_text
from .columns import SCENARIOS
from .mini import (
    MARKER, Session, _csv_bytes, _evidence_last, _filler_session, _history_file, _history_stamps, _make_persona,
    _order_sessions, _plan_persona, _table_row,
)
from .mini_catalogue import FIRST_NAMES, LAST_NAMES
from .sources import MINI_README_TITLE

# personas and question rows per split, as on the Hub (val's persona count is approximate there)
FULL_SPLITS = {"benchmark": (200, 5000), "train": (800, 18549), "val": (735, 2061)}
HISTORY_TOKENS = {"32k": 30_000, "128k": 120_000}  # what the real histories hold, about
CHARS_PER_TOKEN = 3.65  # measured on these sessions; only to pad by, the counts written are the tokenizer's
NO_128K_EVERY = 7  # one persona in seven has no 128k history, as some real ones do


class TokenCounter:
    """Qwen3 token counts of messages, each distinct text counted once (templated sessions repeat a lot)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.known = tokenizer, {}

    def __call__(self, messages: list[dict]) -> list[int]:
        texts = [content_text(m["content"]) for m in messages]
        new = list({t for t in texts if t not in self.known})
        if new:
            ids = self.tokenizer(new, add_special_tokens=False)["input_ids"]
            self.known.update({text: len(row) for text, row in zip(new, ids)})
        return [self.known[t] for t in texts]


def rows_per_persona(personas: int, rows: int, rng: random.Random) -> list[int]:
    """``rows`` questions spread over ``personas`` as evenly as the division allows, the extras at random."""
    counts = [rows // personas] * personas
    for index in rng.sample(range(personas), rows % personas):
        counts[index] += 1
    return counts


def persona_questions(persona, count: int, rng: random.Random, scenario_cycle: list[str]):
    """``count`` question rows and their sessions: the mini plan (14 questions) repeated with fresh draws
    until there are enough; evidence and ordering indices are shifted into one list."""
    rows: list[dict] = []
    sessions: list[Session] = []
    while len(rows) < count:
        plan_rows, plan_sessions = _plan_persona(persona, rng, scenario_cycle)
        first = len(sessions)
        sessions += [replace(session, evidence_for=[q + len(rows) for q in session.evidence_for],
                             after=None if session.after is None else session.after + first)
                     for session in plan_sessions]
        rows += plan_rows
    # the sessions of rows past ``count`` stay, as evidence for no question: more of the persona in the history
    sessions = [replace(s, evidence_for=[q for q in s.evidence_for if q < count]) for s in sessions]
    return rows[:count], _order_sessions(sessions, rng)


def padded(sessions: list[Session], tokens: int, rng: random.Random) -> list[Session]:
    """``sessions`` with unrelated filler sessions inserted at random places until about ``tokens`` long."""
    chars = sum(len(content_text(m["content"])) for s in sessions for m in s.messages)
    fillers = []
    while chars < tokens * CHARS_PER_TOKEN:
        filler = Session(_filler_session(rng), "filler")
        chars += sum(len(m["content"]) for m in filler.messages)
        fillers.append(filler)
    places = sorted(rng.randrange(len(sessions) + 1) for _ in fillers)
    out, taken = [], 0
    for index, session in enumerate(sessions):
        while taken < len(places) and places[taken] == index:
            out.append(fillers[taken])
            taken += 1
        out.append(session)
    return out + fillers[taken:]


def write_full_size_dataset(out_dir: str | Path, seed: int = 0, tokenizer=None, progress: bool = True,
                            splits: dict[str, tuple[int, int]] | None = None) -> Path:
    """Write the full-size text dataset to ``out_dir`` (a new or earlier-generated folder), all at once.

    ``splits`` ({split: (personas, rows)}) shrinks it for tests; by default the real sizes."""
    from tqdm.auto import tqdm

    if tokenizer is None:
        from ..models import tokenizer_for
        tokenizer = tokenizer_for("tiny")
    splits = splits or FULL_SPLITS
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(f"{out} is not empty and holds no generated dataset; choose an empty or new folder")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    generator = f"pmv2nb mini-data --full-size --seed {seed}"
    rng = random.Random(f"pmv2nb-full-{seed}")
    total = sum(n for n, _ in splits.values())
    pids = rng.sample(range(total * 10), total)
    plan = [(split, count) for split, (personas, rows) in splits.items()
            for count in rows_per_persona(personas, rows, rng)]
    scenario_cycle = list(SCENARIOS)
    rng.shuffle(scenario_cycle)
    count_tokens = TokenCounter(tokenizer)
    table: dict[str, list[dict]] = {split: [] for split in splits}
    for position, ((split, count), pid) in enumerate(tqdm(list(zip(plan, pids)), desc="full-size personas",
                                                          disable=not progress)):
        prng = random.Random(f"pmv2nb-full-{seed}-persona-{pid}")
        name = f"{prng.choice(FIRST_NAMES)} {prng.choice(LAST_NAMES)}"
        persona = _make_persona(pid, split, name, prng)
        rows, sessions = persona_questions(persona, count, prng, scenario_cycle)
        if position % 3 == 0:  # a sensitive detail revealed last: distance 0, as in some real rows
            sessions = _evidence_last(sessions, rows, "sensitive_info")
        stamps = _history_stamps(seed, pid)
        links, stats = {}, {}
        for size in HISTORY_TOKENS:
            if size == "128k" and position % NO_128K_EVERY == NO_128K_EVERY - 1:
                continue
            payload, stats[size] = _history_file(persona, padded(sessions, HISTORY_TOKENS[size], prng), size,
                                                 generator, count_tokens)
            links[size] = f"data/chat_history_{size}/chat_history_{stamps[size]}_persona{pid}.json"
            target = staging / links[size]
            target.parent.mkdir(parents=True, exist_ok=True)
            # compact: the indented form goes through json's pure-Python encoder, several times slower
            target.write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")
        snippets = {q: s.messages for s in sessions for q in s.evidence_for}
        table[split] += [_table_row(persona, row, index, links, stats, row["query"], snippets[index])
                         for index, row in enumerate(rows)]
    for split, rows in table.items():
        random.Random(f"pmv2nb-full-{seed}-{split}-order").shuffle(rows)
        target = staging / "benchmark" / "text" / f"{split}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_csv_bytes(rows))
    counts = ", ".join(f"{split} {len(rows)} questions" for split, rows in table.items())
    (staging / MARKER).write_text(
        f"{MINI_README_TITLE}, at full size\n\nGenerated by `{generator}` (full size: {counts}; text only); "
        "for scale work only, synthetic like the mini dataset (its README lists the differences from real data).\n",
        encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    staging.replace(out)
    return out


__all__ = ["FULL_SPLITS", "HISTORY_TOKENS", "write_full_size_dataset"]
