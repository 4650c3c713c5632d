"""The two protocols: what the authors' public code does (``official``) and what the paper says (``paper``).

Each protocol is a set of named switches, ordinary settings of the profile (``pmv2nb profile --keys``),
so a user can take one protocol and change a single switch. ``docs/protocol.md`` gives each switch's
source: the authors' file and commit, the paper's section, and why ``paper`` chose its value where the
paper is silent. A test checks that the table and these presets agree.

Sizes (steps, batch, chunk and memory caps) stay with the profile, since a laptop cannot run the
paper's; only behaviour is switched here.
"""

from __future__ import annotations

PROTOCOLS: dict[str, dict[str, object]] = {
    "official": {
        "sft.think_instruction": False,
        "sft.max_grad_norm": 0.5,
        "sft.loss_turns": "all",
        "sft.task_mix": "rl_mix",
        "grpo.require_think_mcq": False,
        "grpo.require_think_open": True,
        "grpo.judges": 1,
        "grpo.lr_scheduler": "constant",
        "grpo.updates_per_batch": 2,
        "eval.judge_calls": 1,
        "eval.judge_rubric": "strict",
        "eval.recall_sentence": "preferences",
        "eval.parser": "strict",
        "eval.boxed_temperature": 0.0,
        "eval.no_letter_fallback": "nearest_option",
        "eval.api_sampling": "none",
        "eval.fit_history": "on_error",
        "memory.update_query": "query_options",
        "memory.privacy_instruction": False,
        "memory.raw_notes": True,
        "memory.rl.mcq_fraction": 1.0,
        "memory.rl.require_think_mcq": False,
        "memory.rl.require_think_open": False,
        "grpo.long_prompts": "drop",
        "train_prompt.system": "generic",
        "train_prompt.recall": False,
        "train_prompt.max_options": 4,
        "memory.answer_cap": "memory",
        "memory.temperature": 1.0,
        "memory.top_p": 0.7,
    },
    "paper": {
        "sft.think_instruction": True,
        "sft.max_grad_norm": 1.0,
        "sft.loss_turns": "final",
        "sft.task_mix": "both",
        "grpo.require_think_mcq": False,
        "grpo.require_think_open": False,
        "grpo.judges": 3,
        "grpo.lr_scheduler": "linear",
        "grpo.updates_per_batch": 1,
        "eval.judge_calls": 3,
        "eval.judge_rubric": "graded",
        "eval.recall_sentence": "people",
        "eval.parser": "lenient",
        "eval.boxed_temperature": None,
        "eval.no_letter_fallback": "invalid",
        "eval.api_sampling": "capped",
        "eval.fit_history": "before",
        "memory.update_query": "none",
        "memory.privacy_instruction": True,
        "memory.raw_notes": False,
        "memory.rl.mcq_fraction": 0.8,
        "memory.rl.require_think_mcq": False,
        "memory.rl.require_think_open": False,
        "grpo.long_prompts": "cut",
        "train_prompt.system": "instructed",
        "train_prompt.recall": True,
        "train_prompt.max_options": None,
        "memory.answer_cap": "reply",
        "memory.temperature": None,
        "memory.top_p": None,
    },
}
DEFAULT_PROTOCOL = "paper"
