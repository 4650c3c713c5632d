"""Long chats rendered and tokenized once per repeated part: what training preparation reads at paper scale.

Every question of a persona carries the same ~30k-token history, and building a training row renders
and tokenizes it several times (the length rule, the prompt, prompt plus reply). :class:`ChatTokens`
gives the same text and the same ids as the tokenizer's own ``apply_chat_template`` + tokenizer call,
for a fraction of the work:

- **Rendering.** The chat template is run once per sequence of roles on placeholder contents (a
  skeleton); a conversation's text is the skeleton with its contents put back. That holds when the
  template writes each content unchanged, which is checked: the whole text against a real rendering
  the first time a skeleton is used, and on every call each of the last two messages (the query and the
  reply, which change from row to row) in a two-message rendering of its own. A template that
  rewrites a content (Qwen3 trims a final reply's leading newlines) is rendered for real there.
- **Tokenizing.** A tokenizer splits its input at its added tokens (``<|im_start|>`` ...) before
  anything else, so the ids of a text are the ids of its pieces between them, in order. Each piece is
  tokenized once and remembered, so a history's messages are tokenized for its first question only.
  A tokenizer whose added tokens strip neighbouring spaces does not split that way; it is tokenized
  whole (slow, still exact).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..messages import content_text

PLACEHOLDER = "@@pmv2nb-{}@@"


@dataclass(frozen=True)
class Rendered:
    """A conversation's text and, when it came from a skeleton, where each content lies and what surrounds it."""

    text: str
    contents: tuple[tuple[int, int], ...] | None = None  # (start, end) of each message's content
    pieces: tuple[str, ...] | None = None  # the template's text around them: len(contents) + 1 pieces


@dataclass(frozen=True)
class _Skeleton:
    pieces: tuple[str, ...]  # the text between contents: len(messages) + 1 pieces
    exact: bool | None  # None until the first real rendering was compared with it


class ChatTokens:
    """Exact chat rendering and tokenizing for one tokenizer, remembering the parts that repeat."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        added = tokenizer.added_tokens_decoder.values()
        self._added_ids = {token.content: tokenizer.convert_tokens_to_ids(token.content) for token in added}
        self.splits_at_added = bool(self._added_ids) and not any(
            token.lstrip or token.rstrip or token.single_word for token in added)
        names = sorted(self._added_ids, key=len, reverse=True)
        self._splitter = re.compile("(" + "|".join(map(re.escape, names)) + ")") if names else None
        self._skeletons: dict[tuple, _Skeleton] = {}
        self._pieces: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.stats = {"real_renders": 0, "pieces_tokenized": 0, "pieces_reused": 0}

    # rendering -------------------------------------------------------------------------------------------

    def _real(self, roles: tuple[str, ...], contents: list[str], add_generation_prompt: bool) -> str:
        self.stats["real_renders"] += 1
        messages = [{"role": role, "content": content} for role, content in zip(roles, contents)]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                                  tokenize=False)

    def _skeleton(self, roles: tuple[str, ...], add_generation_prompt: bool) -> _Skeleton | None:
        key = (roles, add_generation_prompt)
        if key not in self._skeletons:
            marks = [PLACEHOLDER.format(i) for i in range(len(roles))]
            rest, pieces = self._real(roles, marks, add_generation_prompt), []
            for mark in marks:
                before, found, rest = rest.partition(mark)
                if not found:  # the template leaves a content out: no skeleton for these roles
                    self._skeletons[key] = None
                    return None
                pieces.append(before)
            self._skeletons[key] = _Skeleton(tuple(pieces) + (rest,), None)
        return self._skeletons[key]

    @staticmethod
    def _filled(skeleton: _Skeleton, contents: list[str]) -> Rendered:
        parts, spans, at = [], [], 0
        for piece, content in zip(skeleton.pieces, contents):
            at += len(piece)
            spans.append((at, at + len(content)))
            at += len(content)
            parts += (piece, content)
        parts.append(skeleton.pieces[-1])
        return Rendered("".join(parts), tuple(spans), skeleton.pieces)

    def _tail_kept(self, roles: tuple[str, ...], contents: list[str], add_generation_prompt: bool) -> bool:
        """Whether the template writes the last two contents unchanged, in a conversation of just those two."""
        tail_roles, tail = roles[-2:], contents[-2:]
        skeleton = self._skeleton(tail_roles, add_generation_prompt)
        return (skeleton is not None
                and self._filled(skeleton, tail).text == self._real(tail_roles, tail, add_generation_prompt))

    def render(self, messages: list[dict], add_generation_prompt: bool = False, check: bool = False) -> Rendered:
        """The text ``apply_chat_template(messages, tokenize=False)`` gives, and each content's place in it.

        ``check`` compares the result with a real rendering (callers ask for it once per history: a
        content the template would rewrite then falls back to the real rendering)."""
        roles = tuple(m["role"] for m in messages)
        contents = [content_text(m["content"]) for m in messages]
        skeleton = self._skeleton(roles, add_generation_prompt)
        if skeleton is None or skeleton.exact is False or not self._tail_kept(roles, contents,
                                                                              add_generation_prompt):
            return Rendered(self._real(roles, contents, add_generation_prompt))
        rendered = self._filled(skeleton, contents)
        if skeleton.exact is None or check:  # the first use of these roles, or asked: compare with the template
            real = self._real(roles, contents, add_generation_prompt)
            if skeleton.exact is None:
                self._skeletons[(roles, add_generation_prompt)] = _Skeleton(skeleton.pieces, rendered.text == real)
            if rendered.text != real:
                return Rendered(real)
        return rendered

    # tokenizing ------------------------------------------------------------------------------------------

    def _piece(self, piece: str) -> tuple[np.ndarray, np.ndarray]:
        found = self._pieces.get(piece)
        if found is not None:
            self.stats["pieces_reused"] += 1
            return found
        self.stats["pieces_tokenized"] += 1
        if piece in self._added_ids:
            found = (np.array([self._added_ids[piece]], dtype=np.int32), np.array([[0, len(piece)]], dtype=np.int64))
        else:
            encoded = self.tokenizer(piece, add_special_tokens=False, return_offsets_mapping=True)
            found = (np.asarray(encoded["input_ids"], dtype=np.int32),
                     np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2))
        self._pieces[piece] = found
        return found

    def encode(self, text: str, offsets: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """The ids ``tokenizer(text, add_special_tokens=False)`` gives, and with ``offsets`` each id's
        (start, end) characters in ``text``."""
        if not self.splits_at_added:
            encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=offsets)
            return (np.asarray(encoded["input_ids"], dtype=np.int32),
                    np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2) if offsets else None)
        pieces = [piece for piece in self._splitter.split(text) if piece]
        found = [self._piece(piece) for piece in pieces]
        if not found:
            return np.zeros(0, dtype=np.int32), np.zeros((0, 2), dtype=np.int64) if offsets else None
        ids = np.concatenate([piece_ids for piece_ids, _ in found])
        if not offsets:
            return ids, None
        starts = np.cumsum([0] + [len(piece) for piece in pieces[:-1]])
        shifted = [piece_offsets + start for (_, piece_offsets), start in zip(found, starts.tolist())]
        return ids, np.concatenate(shifted)

    def ids(self, messages: list[dict], add_generation_prompt: bool = False) -> np.ndarray:
        """The ids ``apply_chat_template(messages, tokenize=True)`` gives."""
        return self.encode(self.render(messages, add_generation_prompt).text)[0]

    def length(self, messages: list[dict], add_generation_prompt: bool = True) -> int:
        """Tokens the model reads for ``messages`` (as :func:`pmv2nb.models.chat_template_length` counts them)."""
        return len(self.ids(messages, add_generation_prompt))


def common_prefix_length(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading ids two sequences share."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def overlap_mask(offsets: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """1 for each token whose characters overlap one of the (sorted, disjoint) spans, else 0."""
    mask = np.zeros(len(offsets), dtype=np.int8)
    if not spans or not len(offsets):
        return mask
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])
    which = np.searchsorted(ends, offsets[:, 0], side="right")  # the first span ending after the token starts
    inside = which < len(spans)
    which = np.minimum(which, len(spans) - 1)
    mask[inside & (offsets[:, 1] > starts[which]) & (offsets[:, 0] < ends[which])] = 1
    return mask
