"""Training data builders: mix ratios, stable shuffles, gold letters, truncation (rewards: test_rewards.py)."""

import pytest

from pmv2nb import prompts
from pmv2nb.data import DataError, load_split
from pmv2nb.models import tokenizer_for
from pmv2nb.train.examples import PromptBuilder, grpo_prompts, sft_examples, split_tasks, training_option_order
from pmv2nb.train.rewards import boxed_letter


@pytest.fixture(scope="module")
def train_split(mini_root):
    return load_split(mini_root, "train")


@pytest.fixture(scope="module")
def tokenizer():
    return tokenizer_for("tiny")


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.8, 1.0])
def test_grpo_mix_has_the_requested_share_of_mcq_rows(train_split, tokenizer, fraction):
    records, _ = grpo_prompts(train_split, tokenizer, 100_000, mcq_fraction=fraction, progress=False)
    n_mcq = sum(r["task"] == "mcq" for r in records)
    assert len(records) == len(train_split)
    assert n_mcq == round(fraction * len(records))
    for record in records:  # the reward labels ride along, and MCQ prompts carry the options
        assert record["preference"] == train_split.questions["preference"].iat[record["row"]]
        has_options = "(a) " in record["prompt"][-1]["content"]
        assert has_options == (record["task"] == "mcq")
        assert (record["gold_letter"] != "") == (record["task"] == "mcq")


def test_mix_assignment_is_seeded_and_rejects_bad_fractions():
    rows = list(range(50))
    assert split_tasks(rows, 0.6, seed=3) == split_tasks(rows, 0.6, seed=3)
    assert split_tasks(rows, 0.6, seed=3) != split_tasks(rows, 0.6, seed=4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        split_tasks(rows, 1.5)


def test_options_are_shuffled_with_seed_42_plus_row_and_the_gold_letter_points_at_the_answer(train_split, tokenizer):
    builder = PromptBuilder(train_split, tokenizer, 100_000)
    q = train_split.questions
    letters = set()
    for row in range(12):
        built = builder.prompt(row, "mcq")
        n = 1 + len(q["incorrect_answers"].iat[row])
        assert built["option_order"] == training_option_order(row, n)  # same order on every call and machine
        gold_index = prompts.TRAIN_LETTERS.index(built["gold_letter"])
        assert built["options"][gold_index] == q["correct_answer"].iat[row]
        assert f"({built['gold_letter']}) {q['correct_answer'].iat[row]}" in built["messages"][-1]["content"]
        letters.add(built["gold_letter"])
    assert len(letters) > 1  # the gold answer is not always in the same place


def test_prompt_keeps_instruction_persona_and_query_in_order(train_split, tokenizer):
    built = PromptBuilder(train_split, tokenizer, 100_000).prompt(0, "open")
    messages = built["messages"]
    history = train_split.history(0, "32k", keep_persona=True, text_only=True)
    assert messages[0]["content"] == prompts.TRAIN_SYSTEM
    assert messages[1] == history[0] and history[0]["role"] == "system"  # persona message kept
    assert messages[2:-1] == history[1:]
    assert messages[-1]["content"].startswith(train_split.questions["user_query"].iat[0]["content"])


def test_truncation_drops_oldest_exchanges_only_and_reports_it(train_split, tokenizer):
    limit = 1200
    builder = PromptBuilder(train_split, tokenizer, limit)
    full = PromptBuilder(train_split, tokenizer, 100_000).prompt(3, "mcq")
    cut = builder.prompt(3, "mcq")
    assert cut["prompt_tokens"] <= limit < full["prompt_tokens"]
    # same head and query; the kept history is a suffix of the full one that starts at a user turn
    assert cut["messages"][:2] == full["messages"][:2] and cut["messages"][-1] == full["messages"][-1]
    kept, whole = cut["messages"][2:-1], full["messages"][2:-1]
    assert kept and kept == whole[len(whole) - len(kept):] and kept[0]["role"] == "user"
    # the exact count, measured with the real template
    ids = tokenizer.apply_chat_template(cut["messages"], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert len(ids) == cut["prompt_tokens"]
    report = builder.report
    assert (report.rows, report.truncated, report.messages_dropped) == (1, 1, len(whole) - len(kept))
    assert "1 truncated" in report.summary()


def test_a_query_that_cannot_fit_is_an_error_naming_the_row(train_split, tokenizer):
    with pytest.raises(DataError, match="even with no history") as caught:
        PromptBuilder(train_split, tokenizer, 60).prompt(2, "mcq")
    assert (caught.value.row, caught.value.column) == (2, "user_query")
    assert caught.value.file == train_split.table


def test_evidence_counts_as_lost_when_it_lies_before_the_kept_history(train_split, tokenizer):
    """The dataset's distance (tokens after the evidence) is compared with what the kept history holds."""
    q = train_split.questions
    lost_seen = kept_seen = 0
    for row in range(len(q)):
        builder = PromptBuilder(train_split, tokenizer, 1200)
        built = builder.prompt(row, "open")
        kept = built["messages"][2:-1]
        kept_tokens = sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) for m in kept)
        distance = int(q["distance_from_related_snippet_to_query_32k"].iat[row])
        if kept_tokens + 6 * len(kept) < distance < built["prompt_tokens"]:  # cut, though the prompt is longer
            assert builder.report.evidence_lost == 1, f"row {row}"
            lost_seen += 1
        elif distance < kept_tokens:
            assert builder.report.evidence_lost == 0, f"row {row}"
            kept_seen += 1
    assert lost_seen and kept_seen


def test_sft_targets_are_boxed_letter_plus_answer_or_the_gold_answer(train_split, tokenizer):
    examples, report = sft_examples(train_split, tokenizer, 4096, limit=5, progress=False)
    assert len(examples) == 10 and report.rows == 10
    q = train_split.questions
    for example in examples:
        reply = example["messages"][-1]
        assert reply["role"] == "assistant"
        gold = q["correct_answer"].iat[example["row"]]
        if example["task"] == "mcq":
            assert reply["content"] == f"\\boxed{{{example['gold_letter']}}} {gold}"
            assert boxed_letter(reply["content"]) == example["gold_letter"]
        else:
            assert reply["content"] == gold


def test_rl_mix_gives_one_example_per_row_in_the_grpo_split(train_split, tokenizer):
    from pmv2nb.evaluate.tasks import rows_with_history

    both, _ = sft_examples(train_split, tokenizer, 100_000, limit=10, progress=False)
    mixed, report = sft_examples(train_split, tokenizer, 100_000, limit=10, mcq_fraction=0.8, seed=7, think=True,
                                 progress=False)
    rows = rows_with_history(train_split, "32k", 10)
    assert len(both) == 2 * len(rows) and len(mixed) == len(rows) == report.rows
    assert {e["row"]: e["task"] for e in mixed} == split_tasks(rows, 0.8, seed=7)  # GRPO's assignment, row by row
    assert sum(e["task"] == "mcq" for e in mixed) == 8
    records, _ = grpo_prompts(train_split, tokenizer, 100_000, mcq_fraction=0.8, limit=10, seed=7, progress=False)
    assert [e["messages"][:-1] for e in mixed] == [r["prompt"] for r in records]  # the same prompts GRPO sees


CHAT = [{"role": "system", "content": "Answer in one line."},
        {"role": "system", "content": "I am Ada, a night-shift nurse."},
        {"role": "user", "content": "Any tea for late shifts?"},
        {"role": "assistant", "content": "Rooibos: no caffeine, so sleep after the shift is easier."},
        {"role": "user", "content": "Which should I pick?\n(a) espresso\n(b) rooibos"},
        {"role": "assistant", "content": "\\boxed{b} rooibos"}]


def _masked_runs(tokenizer, encoded) -> list[str]:
    """The decoded text of each unbroken run of masked tokens."""
    runs, current = [], []
    for token, bit in zip(encoded["input_ids"], encoded["assistant_masks"]):
        if bit:
            current.append(token)
        elif current:
            runs, current = runs + [current], []
    runs += [current] if current else []
    return [tokenizer.decode(run) for run in runs]


@pytest.mark.parametrize("model", ["tiny", "smollm2-135m-instruct"])
def test_all_turn_mask_covers_exactly_the_assistant_replies(model):
    from pmv2nb.train.sft import assistant_token_mask

    tok = tokenizer_for(model)
    encoded = assistant_token_mask(tok, CHAT)
    ids = tok.apply_chat_template(CHAT, tokenize=True)
    assert encoded["input_ids"] == (ids["input_ids"] if hasattr(ids, "keys") else ids)  # what TRL would read
    replies = [m["content"] for m in CHAT if m["role"] == "assistant"]
    assert _masked_runs(tok, encoded) == [f"{reply}<|im_end|>\n" for reply in replies]  # each reply and its stop
    context = tok.decode([t for t, bit in zip(encoded["input_ids"], encoded["assistant_masks"]) if not bit])
    assert all(m["content"] in context for m in CHAT if m["role"] != "assistant")
    assert "<think>" not in "".join(_masked_runs(tok, encoded))  # Qwen3's empty think block stays context


def test_all_turn_mask_follows_a_reply_the_template_rewrote(tokenizer):
    from pmv2nb.train.sft import assistant_token_mask

    chat = CHAT[:-1] + [{"role": "assistant", "content": "\n\n\\boxed{b} rooibos"}]  # Qwen3 drops the newlines
    assert _masked_runs(tokenizer, assistant_token_mask(tokenizer, chat))[-1] == "\\boxed{b} rooibos<|im_end|>\n"


def test_all_turn_mask_on_a_real_history_marks_every_chatbot_turn(train_split, tokenizer):
    from pmv2nb.train.sft import to_token_targets

    example = sft_examples(train_split, tokenizer, 1536, limit=1, progress=False)[0][0]
    replies = [m["content"] for m in example["messages"] if m["role"] == "assistant"]
    encoded = to_token_targets([example], tokenizer)[0]
    assert len(replies) > 2 and _masked_runs(tokenizer, encoded) == [f"{r}<|im_end|>\n" for r in replies]
    assert len(encoded["input_ids"]) <= 1536  # the length rule still holds for the whole conversation


def test_full_fine_tuning_keeps_float32_master_weights_and_lora_on_a_gpu_keeps_its_base_in_the_model_dtype(
        monkeypatch):
    """bfloat16 weights would round away Adam steps of a 1e-5 learning rate; LoRA trains float32 adapters."""
    from pmv2nb import config
    from pmv2nb.train import common

    monkeypatch.setattr(common, "resolve_dtype",
                        lambda dtype, device, capability=None: "bfloat16" if dtype == "auto" else dtype)
    laptop = config.resolve("laptop", {"model.device": "cuda"})
    for gpu in (True, False):
        monkeypatch.setattr(common, "on_gpu", lambda profile, gpu=gpu: gpu)
        assert common.training_dtypes(laptop) == ("float32", "bf16")
        assert common.training_dtypes(laptop, lora=True) == ("bfloat16" if gpu else "float32", "bf16")
        pure = config.with_overrides(laptop, {"model.train_weights": "dtype"})
        assert common.training_dtypes(pure) == ("bfloat16", "bf16")
    assert common.training_dtypes(config.with_overrides(laptop, {"model.train_weights": "float32"}), lora=True) == (
        "float32", "bf16")
    with pytest.raises(ValueError, match="model.train_weights must be one of"):
        common.training_dtypes(config.with_overrides(laptop, {"model.train_weights": "bf16"}))
