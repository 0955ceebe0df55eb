"""Benchmarks (``studio bench NAME``), each printed as ratios against a baseline run in the same call.

overhead    train-overhead: the engine vs a plain TRL script, alternated in one process
train       train: the engine vs plain TRL + peft on SmolLM2, uniform and skewed chats, a process per run
gpu         gpu: the engine vs plain and hand-tuned TRL on real model shapes (gpu_common, gpu_worker, gpu_job)
gpu_memory  gpu-memory: a random ~1B Llama, bf16 and 4-bit, on a GPU
memory      memory: the memory estimate against the tensor peak of a real run (CPU or GPU)
chat        chat-memory: compare mode on one copy of the base vs the base loaded twice
learn       learn: SmolLM2 base vs tuned accuracy on the word problems
data        data: the data cache speed-up and tokenization rows/s
(poll-load lives in ``studio.ui.poll_bench``: it serves the app.)
"""
