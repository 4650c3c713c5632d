"""Training stages of the paper: SFT cold start and GRPO, with the data builders and rewards they share.

``examples`` turns a split into SFT conversations and GRPO prompts (the same prompt text for both),
``rewards`` holds the verifiable MCQ reward and the judge-based open-ended reward, and ``sft`` /
``grpo`` wrap TRL's trainers so one call runs a profile's recipe on CPU or on many GPUs. The
notebooks and the ``pmv2nb sft`` / ``pmv2nb grpo`` commands call the same functions.
"""
