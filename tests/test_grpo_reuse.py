"""GRPO rollouts that read each repeated prompt once must be TRL's own rollouts, token for token.

Each test asks one trainer twice, through the reuse path and through TRL's ``_generate_single_turn``,
with the same seed, on the same prompt ids.
"""

import pytest
import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from pmv2nb import config, models
from pmv2nb.data.loader import load_profile_split
from pmv2nb.train.examples import grpo_prompts
from pmv2nb.train.grpo_reuse import PromptReuseGRPOTrainer, distinct_rows


def make_trainer(model_name: str, folder, greedy: bool, max_new_tokens: int, num_generations: int = 2):
    model = models.load_causal_lm(str(models.builtin_model_dir(model_name)), "float32")
    args = GRPOConfig(output_dir=str(folder), per_device_train_batch_size=num_generations,
                      num_generations=num_generations, max_completion_length=max_new_tokens, use_cpu=True,
                      report_to="none", generation_kwargs={"do_sample": False} if greedy else None)
    return PromptReuseGRPOTrainer(model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions),
                                  args=args, processing_class=models.tokenizer_for(model_name),
                                  train_dataset=Dataset.from_list([{"prompt": "unused"}] * num_generations))


def both_ways(trainer, prompt_ids: list[list[int]], seed: int = 0):
    """(reuse path, TRL's path) completions, each from the same random state."""
    torch.manual_seed(seed)
    reused, reused_logprobs = trainer._generate_single_turn(prompt_ids, None, {}, 2)
    torch.manual_seed(seed)
    original, original_logprobs = GRPOTrainer._generate_single_turn(trainer, prompt_ids, None, {}, 2)
    assert reused_logprobs is None and original_logprobs is None
    return reused, original


def test_distinct_rows_point_every_copy_at_its_prompts_first_row():
    keep, source = distinct_rows([[1, 2], [1, 2], [3], [1, 2], [3], [4]])
    assert keep == [0, 2, 5] and source == [0, 0, 1, 0, 1, 2]


def test_sampled_rollouts_with_reuse_are_trls_for_the_same_seed(tmp_path):
    trainer = make_trainer(models.TINY, tmp_path, greedy=False, max_new_tokens=6)
    tokenizer = trainer.processing_class
    history = "We talked about hiking, jazz and my sister's wedding. " * 12
    long_a, long_b = (tokenizer(f"{history} Question {n}: what do I like?")["input_ids"] for n in (1, 2))
    short = tokenizer("Hello there?")["input_ids"]  # left-padded far more than the others
    prompts = [long_a, long_a, short, short, long_b, long_b]
    reused, original = both_ways(trainer, prompts)
    assert reused == original
    assert reused[0] != reused[1]  # sampled copies of one prompt still differ
    assert trainer.prefill_tokens_saved == (len(long_a) - 1) + (len(short) - 1) + (len(long_b) - 1)


def test_batches_without_a_repeated_prompt_go_to_trls_path(tmp_path):
    trainer = make_trainer(models.TINY, tmp_path, greedy=False, max_new_tokens=4)
    prompts = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    reused, original = both_ways(trainer, prompts, seed=3)
    assert reused == original and trainer.prefill_tokens_saved == 0


@pytest.fixture(scope="module")
def laptop_prompts():
    """Two real open-ended GRPO prompts (chat template, histories cut to fit 300 SmolLM2 tokens; the laptop
    profile's 640 would make the test slow), each twice as TRL repeats them, and a short question SmolLM2
    answers before the token cap, so the end-of-sequence mask is exercised."""
    laptop = config.resolve("laptop")
    records, _ = grpo_prompts(load_profile_split(laptop, "train"), models.tokenizer_for(models.SMOLLM2), 300,
                              mcq_fraction=0.0, limit=2, progress=False, style=laptop.train_prompt)
    prompts = [r["prompt"] for r in records] + [[{"role": "user", "content": "What is the capital of France?"}]]
    return [p for p in prompts for _ in range(2)]


@pytest.mark.slow  # loads the real SmolLM2
@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
def test_real_model_rollouts_with_reuse_are_trls_token_for_token(laptop_prompts, tmp_path, greedy):
    trainer = make_trainer(models.SMOLLM2, tmp_path, greedy=greedy, max_new_tokens=12)
    prompt_ids, _, _ = trainer._tokenize_prompts(laptop_prompts)
    reused, original = both_ways(trainer, prompt_ids, seed=1)
    assert reused == original
    assert trainer.prefill_tokens_saved > 2 * 250  # the two long prompts were each read once, not twice
    eos = trainer.eos_token_ids
    assert all(token not in eos for c in reused for token in c[:-1])  # nothing kept past an end of sequence
    if greedy:  # the capital of France is answered in under 12 tokens, so its replies were cut after their end
        assert reused[-1] == reused[-2] and reused[-1][-1] in eos and len(reused[-1]) < 12
    else:
        assert reused[0] != reused[1]  # sampled copies of one prompt still differ
