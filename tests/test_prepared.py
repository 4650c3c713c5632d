"""Training rows prepared once (tokens, labels, disk cache) are the rows TRL's own preparation makes, token for token.

The reference is SFTTrainer itself, given the examples the way the code gave them before: prompt/completion
conversations (``sft.loss_turns=final``) or the rendered ids with an assistant mask (``all``), tokenized,
labelled, cut and filtered by TRL. Checked with the Qwen3 and SmolLM2 tokenizers on the mini data and on
a sample of full-size histories.
"""

import json

import numpy as np
import pytest

from pmv2nb import config
from pmv2nb.data import full_size, load_profile_split
from pmv2nb.models import SMOLLM2, load_causal_lm, tiny_model_dir, tokenizer_for
from pmv2nb.train.examples import PromptBuilder, grpo_prompts, prepared_grpo_prompts
from pmv2nb.train.sft import prepared_sft_rows, sft_examples_for, trainer_rows
from pmv2nb.train.tokens import ChatTokens


def trl_rows(examples, tokenizer, loss_turns, max_length, tmp_path):
    """What SFTTrainer's preparation made of the examples before rows came ready: (input_ids, labels) pairs."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model = load_causal_lm(str(tiny_model_dir()))
    args = SFTConfig(output_dir=str(tmp_path / "trl"), max_length=max_length, truncation_mode="keep_start",
                     completion_only_loss=True, report_to="none", use_cpu=True)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(trainer_rows(examples, tokenizer, loss_turns)))
    return [(row["input_ids"], row["labels"]) for row in trainer.train_dataset]


def compare(profile, tokenizer, limit, tmp_path):
    examples, _ = sft_examples_for(profile, load_profile_split(profile, "train"), tokenizer, limit, progress=False)
    theirs = trl_rows(examples, tokenizer, profile.sft.loss_turns, profile.sft.max_length, tmp_path)
    ours, info = prepared_sft_rows(profile, "train", tokenizer, limit, tmp_path / "prepared", progress=False)
    assert info["rows"] == len(theirs) == len(ours) and info["examples"] == len(examples)
    for (ids, labels), row in zip(theirs, ours):
        assert row["input_ids"] == ids and row["labels"] == labels
    assert sum(sum(label != -100 for label in labels) for _, labels in theirs) > 0
    return ours, info


@pytest.mark.parametrize("loss_turns", ["final", "all"])
@pytest.mark.parametrize("model", ["tiny", SMOLLM2])
def test_prepared_sft_rows_are_trls_own_on_the_mini_data(tmp_path, loss_turns, model):
    profile = config.resolve("tiny", {"sft.loss_turns": loss_turns, "sft.max_length": 1536})
    compare(profile, tokenizer_for(model), 12, tmp_path)


def test_a_cut_that_leaves_no_target_drops_the_row_as_trl_does(tmp_path):
    """At 700 tokens the length rule keeps the newest exchanges, and with every turn a target some rows
    lose their final reply to the cut: TRL drops those; so must the prepared rows."""
    profile = config.resolve("tiny", {"sft.loss_turns": "all", "sft.max_length": 700})
    rows, info = compare(profile, tokenizer_for("tiny"), 8, tmp_path)
    assert all(len(row["input_ids"]) <= 700 for row in rows)


@pytest.fixture(scope="module")
def full_size_sample(tmp_path_factory):
    """Full-size histories (about 30k tokens), two personas' worth of train rows."""
    return full_size.write_full_size_dataset(tmp_path_factory.mktemp("full") / "data", seed=5, progress=False,
                                             splits={"train": (2, 6)})


@pytest.mark.parametrize("loss_turns", ["final", "all"])
def test_prepared_sft_rows_are_trls_own_at_full_size(tmp_path, full_size_sample, loss_turns):
    profile = config.resolve("paper", {"data.source": str(full_size_sample), "sft.loss_turns": loss_turns})
    rows, info = compare(profile, tokenizer_for("tiny"), 6, tmp_path)
    assert min(len(row["input_ids"]) for row in rows) > 20_000  # whole histories, not a cut
    assert info["chat_tokens"]["pieces_reused"] > info["chat_tokens"]["pieces_tokenized"]


def test_rows_are_prepared_once_and_read_by_the_next_run(tmp_path, capsys):
    profile = config.resolve("tiny", {"sft.max_length": 1536})
    tokenizer = tokenizer_for("tiny")
    first, _ = prepared_sft_rows(profile, "train", tokenizer, 4, tmp_path, progress=True)
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    stamp = (folder / "rows.arrow").stat().st_mtime_ns
    again, _ = prepared_sft_rows(profile, "train", tokenizer, 4, tmp_path, progress=True)
    assert "read from" in capsys.readouterr().out and (folder / "rows.arrow").stat().st_mtime_ns == stamp
    assert again["input_ids"] == first["input_ids"]
    # a setting that shapes the rows gets its own folder
    prepared_sft_rows(config.with_overrides(profile, {"sft.loss_turns": "all"}), "train", tokenizer, 4, tmp_path,
                      progress=False)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2
    assert json.loads((folder / "info.json").read_text())["parts"]["limit"] == 4


def test_grpo_prompts_are_built_once_and_equal_a_fresh_build(tmp_path, capsys):
    profile = config.resolve("tiny", {"grpo.rows": 6})
    tokenizer = tokenizer_for("tiny")
    prompts, info = prepared_grpo_prompts(profile, tokenizer, tmp_path, progress=False)
    settings = profile.grpo
    fresh, _ = grpo_prompts(load_profile_split(profile, "train"), tokenizer, settings.max_prompt_length,
                            settings.mcq_fraction, profile.data.context_size, limit=6, seed=profile.seed,
                            progress=False, style=profile.train_prompt, long_prompts=settings.long_prompts,
                            drop_over=settings.drop_over)
    assert prompts.to_list() == fresh and info["prompts"] == len(fresh) == 6
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    stamp = (folder / "info.json").stat().st_mtime_ns
    again, _ = prepared_grpo_prompts(profile, tokenizer, tmp_path, progress=True)
    assert "read from" in capsys.readouterr().out and (folder / "info.json").stat().st_mtime_ns == stamp
    assert again.to_list() == fresh
    # the task mix shapes the prompts: another fraction is another folder
    prepared_grpo_prompts(config.with_overrides(profile, {"grpo.mcq_fraction": 1.0}), tokenizer, tmp_path,
                          progress=False)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def test_records_stream_to_disk_with_types_from_rows_that_have_values(tmp_path):
    from pmv2nb.train.prepared import ROWS_FILE, read_rows, write_records

    # open-ended rows first: no letter, no options; then MCQ rows that have them
    records = [{"task": "open", "gold_letter": None, "options": None, "prompt": [{"role": "user", "content": f"q{i}"}]}
               for i in range(9)]
    records += [{"task": "mcq", "gold_letter": "b", "options": ["x", "y"], "prompt": [{"role": "user", "content": "m"}]}
                for _ in range(3)]
    assert write_records(tmp_path / ROWS_FILE, iter(records), batch_rows=4) == 12
    assert read_rows(tmp_path).to_list() == records
    with pytest.raises(ValueError, match="differ from the file's columns"):
        write_records(tmp_path / ROWS_FILE, iter(records[-3:] + [{"task": "open"}]), batch_rows=2)


def test_chat_tokens_fall_back_where_the_template_rewrites_a_content():
    """Qwen3's template trims the leading newlines of a final reply and splits a think block out of one:
    the skeleton would be wrong there, so the real rendering is used, and the ids still match."""
    tokenizer = tokenizer_for("tiny")
    chat = ChatTokens(tokenizer)
    for reply in ("\n\nleading newlines", "<think>plan</think>\n\nthe answer", "plain"):
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": reply}]
        expected = tokenizer.apply_chat_template(messages, tokenize=True)
        expected = expected["input_ids"] if hasattr(expected, "keys") else expected
        assert chat.ids(messages).tolist() == list(expected)


def test_the_length_rule_counts_what_the_template_and_tokenizer_count(mini_root):
    from pmv2nb.data import load_split
    from pmv2nb.models import chat_template_length

    data = load_split(mini_root, "train")
    builder = PromptBuilder(data, tokenizer_for("tiny"), 100_000)
    for row in range(6):
        built = builder.prompt(row, "mcq")
        assert built["prompt_tokens"] == chat_template_length(builder.tokenizer, built["messages"])
    assert builder.chat.stats["pieces_reused"] > 0
    assert np.all(builder.chat.ids(built["messages"], True) >= 0)
