"""Every prompt the project sends to a model, kept in one module so wording changes are reviewable.

The structure follows the benchmark's evaluation protocol (history, then the in-situ query with a
short request to draw on what the user said before, then the options and the answer format), but
the wording is our own. Training-time variants live here too as later stages add them.
"""

from __future__ import annotations

import string

from .config import TrainPromptSettings, check_choice
from .messages import content_text

LETTERS = string.ascii_uppercase[:10]

RECALL_NOTE = (
    "\n\n(Before replying, think back over everything I have told you in our earlier conversations "
    "and take what you learned about me and the people I mentioned into account.)"
)
# The request appended to the query, by ``eval.recall_sentence``: ours names the people the user mentioned,
# which may pull who=others rows towards the third party's preference; the authors' asks only for the
# user's own related preferences.
RECALL_NOTES = {
    "people": RECALL_NOTE,
    "preferences": " Please recall my related preferences from our conversation history, so the answer fits me.",
}

MCQ_INSTRUCTIONS = (
    "Below are candidate replies to the user's latest message. Pick the one that suits this particular "
    "user best, given everything said in the conversation so far.\n\n{options}\n\n"
    "Reason step by step first. Then finish with a single line of the form\n"
    "Final Answer: <letter>"
)

ORACLE_INTRO = "Earlier conversation between the user and the assistant (the part that matters here):"
RAG_INTRO = ("The messages that follow are excerpts from your earlier conversations with this user, picked as "
             "the ones most relevant to their next request.")

JUDGE_POSITIVE = (
    "You are grading how well an assistant's reply is personalized to its user.\n\n"
    "The user's request:\n{query}\n\n"
    "What we know about the user (a preference stated earlier in their chats):\n{preference}\n\n"
    "The assistant's reply:\n{response}\n\n"
    "Score the reply from 0.0 to 1.0: 1.0 when it is clearly shaped by that preference and respects it, "
    "around 0.5 when it is helpful but generic, 0.0 when it ignores or contradicts the preference. "
    "Explain your reasoning in a few sentences, then give the score as \\boxed{{score}}, for example \\boxed{{0.7}}."
)

# The authors' newest rubric grades generic advice as poorly personalized; ``eval.judge_rubric = "strict"``.
JUDGE_STRICT = (
    "You are grading how well an assistant's reply is personalized to its user.\n\n"
    "The user's request:\n{query}\n\n"
    "What we know about the user (a preference stated earlier in their chats):\n{preference}\n\n"
    "The assistant's reply:\n{response}\n\n"
    "Score the reply from 0.0 to 1.0: 1.0 when it is clearly built around that preference, low when it gives "
    "generic advice that would suit anyone (generic is not personalized, however helpful), 0.0 when it ignores "
    "or contradicts the preference. "
    "Explain your reasoning in a few sentences, then give the score as \\boxed{{score}}, for example \\boxed{{0.2}}."
)

JUDGE_NEGATIVE = (
    "You are grading whether an assistant respected a user's request to leave something out.\n\n"
    "The user's request:\n{query}\n\n"
    "Earlier, the user asked the assistant this:\n{preference}\n\n"
    "The assistant's reply:\n{response}\n\n"
    "Score the reply from 0.0 to 1.0: 1.0 when it answers helpfully without relying on or mentioning what the "
    "user asked to be left out, 0.0 when it uses or reveals it. "
    "Explain your reasoning in a few sentences, then give the score as \\boxed{{score}}, for example \\boxed{{1.0}}."
)


def with_recall_note(query: dict, recall: str = "people") -> dict:
    """The user's query message with the recall request (:data:`RECALL_NOTES`) appended (text or part lists)."""
    if recall not in RECALL_NOTES:
        raise ValueError(f"recall sentence must be one of {tuple(RECALL_NOTES)}, got {recall!r}")
    return _append_text(query, RECALL_NOTES[recall])


def _append_text(message: dict, text: str) -> dict:
    """A user message with ``text`` added at its end (a string, or one more text part of a part list)."""
    content = message["content"]
    if isinstance(content, str):
        return {"role": "user", "content": content + text}
    return {"role": "user", "content": [*content, {"type": "text", "text": text.strip()}]}


def format_options(options: list[str]) -> str:
    """``A. ...`` lines, one option per line, in the order given."""
    if len(options) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} options are supported, got {len(options)}")
    return "\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(options))


def mcq_message(options: list[str], role: str = "system") -> dict:
    """The closing message that lists the options and asks for ``Final Answer: <letter>``."""
    return {"role": role, "content": MCQ_INSTRUCTIONS.format(options=format_options(options))}


def oracle_context(snippet: list[dict]) -> list[dict]:
    """Replace the whole history by the evidence session only (the oracle baseline)."""
    lines = [f"{m['role']}: {content_text(m['content'])}" for m in snippet]
    return [{"role": "system", "content": ORACLE_INTRO + "\n\n" + "\n\n".join(lines)}]


def rag_context(excerpts: list[dict]) -> list[dict]:
    """The retrieved messages with their own roles, after a note saying they are excerpts (the RAG baseline)."""
    return [{"role": "system", "content": RAG_INTRO}, *excerpts]


def is_negative_preference(preference: str) -> bool:
    """Preferences phrased as "do not ..." (ask_to_forget rows) are judged on leaving them out."""
    return preference.strip().strip("\"'").lower().startswith(("do not", "don't", "dont "))


JUDGE_RUBRICS = {"graded": JUDGE_POSITIVE, "strict": JUDGE_STRICT}


def judge_messages(query: str, preference: str, response: str, rubric: str = "graded") -> list[dict]:
    """One judge request; the framing follows the preference's polarity, the positive rubric ``rubric``."""
    if rubric not in JUDGE_RUBRICS:
        raise ValueError(f"judge rubric must be one of {tuple(JUDGE_RUBRICS)}, got {rubric!r}")
    template = JUDGE_NEGATIVE if is_negative_preference(preference) else JUDGE_RUBRICS[rubric]
    return [{"role": "user", "content": template.format(query=query, preference=preference, response=response)}]


def read_options(message: str) -> list[str]:
    """The options listed by :func:`mcq_message`, recovered from its text (what heuristic baselines read)."""
    head, _, tail = MCQ_INSTRUCTIONS.partition("{options}")
    if not (message.startswith(head) and message.endswith(tail)):
        raise ValueError("not a multiple-choice message built by pmv2nb.prompts.mcq_message")
    body = message[len(head):len(message) - len(tail)]
    options, start = [], 0
    for letter in LETTERS:
        marker = f"{letter}. "
        if letter == "A":
            if not body.startswith(marker):
                break
            start = len(marker)
            continue
        cut = body.find("\n" + marker, start)
        if cut < 0:
            break
        options.append(body[start:cut])
        start = cut + 1 + len(marker)
    options.append(body[start:])
    return options


# --- training-time prompts (SFT targets, GRPO rollouts, the memory agent's final answer) ---

TRAIN_LETTERS = "abcdefghij"

# Two prompt formats. "chat" is the evaluation protocol: options A-D in a closing message and a
# `Final Answer:` line. "boxed" is the training format: a system instruction, options (a)-(d) inside
# the user's turn and the letter as \boxed{x}. A trained checkpoint is evaluated in the format it was
# trained on (the authors validate that way too); its run.json records which.
CHAT_FORMAT, BOXED_FORMAT = "chat", "boxed"
PROMPT_FORMATS = (CHAT_FORMAT, BOXED_FORMAT)
TRAINING_FORMAT = BOXED_FORMAT

THINK_SENTENCE = " Think it through inside <think> and </think> first, then reply."
TRAIN_SYSTEM = (
    "You are a personal assistant who has talked with this user many times before. Earlier conversations "
    "follow, then the user's new request. Use what the user revealed about themselves, directly or in passing, "
    "to make your reply fit them." + THINK_SENTENCE
)

# The authors' training prompts open with one generic line and ask for thinking after the query
# (``train_prompt.system = "generic"``).
GENERIC_SYSTEM = ("You are a helpful assistant who shapes each reply around what this user has shown of their "
                  "tastes and needs in the conversations below.")
TRAIN_SYSTEMS = ("instructed", "generic")

MCQ_THINK = "Reason inside <think></think>, then give"
TRAIN_MCQ_SUFFIX = (
    "\n\nWhich of these replies fits me best?\n{options}\n\n"
    + MCQ_THINK + " the letter of your choice as \\boxed{{x}}."
)


def format_training_options(options: list[str]) -> str:
    """``(a) ...`` lines: the lower-case labels the training prompts and rewards use."""
    if len(options) > len(TRAIN_LETTERS):
        raise ValueError(f"at most {len(TRAIN_LETTERS)} options are supported, got {len(options)}")
    return "\n".join(f"({TRAIN_LETTERS[i]}) {option}" for i, option in enumerate(options))


def shown_options(options: list[str], style: TrainPromptSettings | None = None) -> list[str]:
    """The options a training prompt lists: the gold answer first, then the first distractors, up to
    ``train_prompt.max_options`` (``style``, a :class:`~pmv2nb.config.TrainPromptSettings`; None shows all)."""
    limit = (style or TrainPromptSettings()).max_options
    return list(options) if limit is None else list(options[:limit])


def training_query(query: dict, options: list[str] | None = None, think: bool = True,
                   style: TrainPromptSettings | None = None) -> dict:
    """The final user turn of a training prompt: the query, the recall request and, for MCQ, the options.

    Without ``think`` the request to reason inside <think> tags is left out (SFT targets have no think block).
    ``style`` (``train_prompt.*``) drops the recall request, and in the generic style the open-ended
    query carries the think request itself, since no instruction opens the prompt.
    """
    style = style or TrainPromptSettings()
    message = with_recall_note(query) if style.recall else {"role": "user", "content": query["content"]}
    if options is None:
        if think and style.system == "generic":
            return _append_text(message, THINK_SENTENCE)
        return message
    suffix = TRAIN_MCQ_SUFFIX.format(options=format_training_options(options))
    if not think:
        suffix = suffix.replace(MCQ_THINK, "Give")
    return _append_text(message, suffix)


def boxed_system(notes: str | None = None, think: bool = True, style: TrainPromptSettings | None = None) -> dict:
    """The boxed format's system message: the training instruction (or, in the generic ``style``, one
    generic line), or with notes, the memory agent's."""
    system = (style or TrainPromptSettings()).system
    check_choice("train_prompt.system", system, TRAIN_SYSTEMS)
    if notes is None and system == "generic":
        return {"role": "system", "content": GENERIC_SYSTEM}
    text = TRAIN_SYSTEM if notes is None else TRAIN_MEMORY_SYSTEM + notes
    return {"role": "system", "content": text if think else text.replace(THINK_SENTENCE, "", 1)}


def mcq_target(letter: str, answer: str) -> str:
    """What SFT teaches for a multiple-choice row: the boxed letter, then the chosen reply itself."""
    return f"\\boxed{{{letter}}} {answer}"


def read_judge(message: str) -> tuple[str, str, str]:
    """(query, preference, response) back from a :func:`judge_messages` prompt (what proxy judges read)."""
    import re

    for template in (JUDGE_POSITIVE, JUDGE_STRICT, JUDGE_NEGATIVE):
        pattern = re.escape(template).replace(r"\{\{", "{").replace(r"\}\}", "}")
        for field in ("query", "preference", "response"):
            pattern = pattern.replace(re.escape("{" + field + "}"), f"(?P<{field}>.*)", 1)
        match = re.fullmatch(pattern, message, re.S)
        if match:
            return match["query"], match["preference"], match["response"]
    raise ValueError("not a judge prompt built by pmv2nb.prompts.judge_messages")


# --- the chunked memory agent (pmv2nb.memory) ---

MEMORY_UPDATE = (
    "You keep a running set of notes about one user of a chat assistant, so that later replies can be "
    "tailored to them without rereading every conversation.\n\n"
    "Your notes so far:\n{memory}\n\n"
    "{query_block}"
    "The next stretch of the user's conversations with the assistant:\n{chunk}\n\n"
    "Write the complete, updated notes. Keep what still holds, add what this stretch reveals about the user "
    "and the people they mention (including things only implied), and correct anything the user has since "
    "changed. If the user asks for something to be forgotten, delete it.{privacy}{query_note} Use short plain "
    "sentences and reply with the notes only."
)
MEMORY_PRIVACY = (" Never record private data such as phone numbers, addresses, account numbers or "
                  "passwords.")

MEMORY_QUERY_BLOCK = "The request the user will make afterwards, which the notes should help with:\n{query}\n\n"
# ``memory.no_query_in_notes``: the request above is shown so the notes can aim at it, not to be noted itself
MEMORY_QUERY_NOTE = " The notes are about the user: leave the request and any answer choices it lists out of them."

MEMORY_CONTEXT = "Your notes about this user, written while reading your earlier conversations with them:\n\n{memory}"

TRAIN_MEMORY_SYSTEM = (
    "You are a personal assistant. You no longer have your earlier conversations with this user, only the "
    "notes you wrote while reading them, shown below. Use them to make your reply fit this user. Think it "
    "through inside <think> and </think> first, then reply.\n\n"
)


def render_history(messages: list[dict]) -> str:
    """A history as numbered plain-text lines, ``Message i (role): text``, the form the memory agent reads."""
    return "\n\n".join(f"Message {i} ({m['role']}): {content_text(m['content'])}"
                       for i, m in enumerate(messages, start=1))


def memory_update_messages(memory: str, chunk: str, query: str | None = None, privacy: bool = True,
                           no_query_in_notes: bool = False) -> list[dict]:
    """One rewrite request: previous notes plus the next chunk (plus the query in the non-causal variants).

    ``privacy`` keeps the instruction not to record private data (``memory.privacy_instruction``);
    ``no_query_in_notes`` adds one not to copy the request or its options into the notes (``memory.no_query_in_notes``).
    """
    block = MEMORY_QUERY_BLOCK.format(query=query) if query is not None else ""
    text = MEMORY_UPDATE.format(memory=memory, chunk=chunk, query_block=block,
                                privacy=MEMORY_PRIVACY if privacy else "",
                                query_note=MEMORY_QUERY_NOTE if no_query_in_notes else "")
    return [{"role": "user", "content": text}]


def memory_context(memory: str) -> dict:
    """The message that stands in for the whole history when the agent answers."""
    return {"role": "system", "content": MEMORY_CONTEXT.format(memory=memory)}
