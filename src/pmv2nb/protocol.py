"""The two protocols: what the authors' public code does (``official``) and what the paper says (``paper``).

Each protocol is a set of named switches, ordinary settings of the profile (``pmv2nb profile --keys``),
so a user can take one protocol and change a single switch. ``docs/protocol.md`` gives each switch's
source: the authors' file and commit, the paper's section, and why ``paper`` chose its value where the
paper is silent. A test checks that the table and these presets agree.

The ``paper`` protocol is the settings' own defaults: only ``official`` lists values, the switches where
the authors' code differs, and ``config.protocol_preset("paper")`` reads the defaults of the same keys.

Sizes (steps, batch, chunk and memory caps) stay with the profile, since a laptop cannot run the
paper's; only behaviour is switched here.
"""

from __future__ import annotations

PROTOCOL_NAMES = ("paper", "official")

# the authors' value of every switch docs/protocol.md names; all but five differ from the defaults (the
# paper protocol), and those five are kept for the source the table gives them
OFFICIAL: dict[str, object] = {
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
    "grpo.box_forms": "pattern",
    "grpo.box_scope": "after_think",
    "grpo.no_letter_fallback": "nearest_option",
    "memory.rl.box_forms": "last_box",
    "memory.rl.box_scope": "anywhere",
    "memory.rl.no_letter_fallback": "invalid",
    "eval.boxed_reader": "mcq_reward",
    "eval.judge_score_reader": "first_clamped",
    "memory.answer_format": "boxed",
    "memory.no_query_in_notes": True,
    "memory.initial_memory": "No previous memory",
}
