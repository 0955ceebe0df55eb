"""Chat playground core: prompts in the trained format, streaming, base vs tuned on one copy, adapters, stops."""
from __future__ import annotations

import threading
import time

import pytest

from chat_helpers import chat_run, chat_runs_dir, one_thread, wp2_run, wp_engine, wp_run  # noqa: F401
from studio.inference import (BASE, ChatEngine, GenerationParams, PromptTooLong, StopScanner, normalize_history)

SHORT = GenerationParams(max_new_tokens=24)
QUESTION = "A farmer has 12 cows and buys 7 more. How many cows does the farmer have now?"


def _first_trained(mask):
    return mask.index(1)


# ----------------------------------------------------------------------------------------------------- prompts
def test_prompt_is_the_trained_prompt_for_a_text_template(wp_engine):
    from studio.data import load_data, render, split_rows

    builder = wp_engine.builder_for()
    cfg = wp_engine.adapters["wp"].config
    _, eval_rows = split_rows(cfg.data, load_data(cfg.data))
    row = eval_rows[0]
    rendered = render(row, wp_engine.tokenizer, builder.spec)
    trained_prompt = rendered.input_ids[:_first_trained(rendered.loss_mask)]
    assert builder.for_row(row)[0].input_ids == trained_prompt
    assert builder.for_row(row)[1] == row["answer"]
    prompt = wp_engine.build_prompt(row["question"])
    assert prompt.input_ids == trained_prompt
    assert prompt.text == row["question"] + "\n### Solution:"
    assert not prompt.trimmed and prompt.notice is None


def test_prompt_is_the_trained_prompt_for_a_chat_template(chat_run):
    from studio.data import load_data, render
    from studio.inference import run_prompt_setup
    from studio.config import load_config
    from studio.modeling import load_base

    cfg = load_config(chat_run / "config.yaml")
    _, tok = load_base(cfg.model, device="cpu")
    builder, loaded = run_prompt_setup(cfg, tok)
    assert builder.uses_chat
    row = loaded.dataset[0]
    rendered = render(row, tok, builder.spec)
    mask = rendered.loss_mask
    last_start = max(i for i in range(len(mask)) if mask[i] == 1 and (i == 0 or mask[i - 1] == 0))
    prompt, reference = builder.for_row(row)
    assert prompt.input_ids == rendered.input_ids[:last_start]
    messages = row["messages"]
    assert reference == messages[-1]["content"]
    # the same prompt from the playground: system prompt + earlier turns as history + the last user message
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    turns = [m for m in messages if m["role"] != "system"]
    history = [(turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns) - 2, 2)]
    built = builder.build(turns[-2]["content"], history, system)
    assert built.input_ids == prompt.input_ids
    assert builder.default_system_prompt == system  # prefilled from the run's data
    assert built.text.endswith("<|im_start|>assistant\n")


def test_history_trimming_keeps_system_prompt_and_newest_turns(chat_run):
    from studio.config import load_config
    from studio.inference import run_prompt_setup
    from studio.modeling import load_base

    cfg = load_config(chat_run / "config.yaml")
    _, tok = load_base(cfg.model, device="cpu")
    builder, _ = run_prompt_setup(cfg, tok)
    history = [(f"question number {i} about apples and pears", f"answer number {i} with some words")
               for i in range(12)]
    full = builder.build("the newest question", history, "SYSTEM RULES", max_input_tokens=100_000)
    assert full.turns_dropped == 0 and not full.trimmed
    limit = len(full.input_ids) // 2
    cut = builder.build("the newest question", history, "SYSTEM RULES", max_input_tokens=limit)
    assert len(cut.input_ids) <= limit
    assert cut.trimmed and cut.turns_dropped > 0 and cut.turns_kept == 12 - cut.turns_dropped
    assert "dropped the" in cut.notice and str(limit) in cut.notice
    assert cut.text.startswith("<|im_start|>system\nSYSTEM RULES<|im_end|>")
    assert "the newest question" in cut.text
    assert "answer number 11" in cut.text  # newest turn kept
    assert "question number 0 " not in cut.text  # oldest dropped
    kept = [i for i in range(12) if f"question number {i} " in cut.text]
    assert kept == list(range(12 - cut.turns_kept, 12))  # a contiguous block of the newest turns
    with pytest.raises(PromptTooLong, match="input limit"):
        builder.build("word " * 400, [], "SYSTEM RULES", max_input_tokens=50)


def test_history_trimming_with_a_text_template(wp_engine):
    history = [(f"Q{i}: how many apples are {i} plus {i}?", f"{i} + {i} = {2 * i}\n#### {2 * i}") for i in range(8)]
    full = wp_engine.build_prompt("How many pears?", history, max_input_tokens=10_000)
    assert full.turns_kept == 8
    cut = wp_engine.build_prompt("How many pears?", history, max_input_tokens=len(full.input_ids) - 5)
    assert 0 < cut.turns_dropped < 8
    assert cut.text.endswith("How many pears?\n### Solution:")
    assert "#### 14" in cut.text and "Q0:" not in cut.text


def test_normalize_history_flattens_gradio_blocks():
    msgs = [{"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
            {"role": "user", "content": "unanswered"}]
    assert normalize_history(msgs) == [("hi there", "hello")]
    assert normalize_history([("a", "b"), ["c", "d"]]) == [("a", "b"), ("c", "d")]


# ---------------------------------------------------------------------------------------------------- generation
def _base_weight(engine):
    """A LoRA-wrapped layer: (the layer, its frozen base weight)."""
    for module in engine.model.modules():
        if hasattr(module, "base_layer") and hasattr(module, "lora_A"):
            return module, module.base_layer.weight
    raise AssertionError("no LoRA layer")


def test_base_answers_come_from_the_same_weights_with_the_adapter_off(wp_engine):
    import torch

    from studio.inference import generate_texts, token_nll
    from studio.modeling import load_base

    fresh, tok = load_base(wp_engine.base_config, device="cpu")  # the base model alone, no peft
    layer, weight = _base_weight(wp_engine)
    seen: list[tuple[bool, int]] = []  # per forward pass of a LoRA layer: (adapter off?, base weight storage)
    hook = layer.register_forward_hook(lambda m, i, o: seen.append((m.disable_adapters,
                                                                    m.base_layer.weight.data_ptr())))
    try:
        result = wp_engine.compare(QUESTION, params=SHORT)  # tuned streams first, then base
    finally:
        hook.remove()
    tuned_calls = next((i for i, (off, _) in enumerate(seen) if off), len(seen))
    assert 0 < tuned_calls < len(seen), "the base answer ran with the adapter on"
    assert {off for off, _ in seen[:tuned_calls]} == {False} and {off for off, _ in seen[tuned_calls:]} == {True}
    assert {ptr for _, ptr in seen} == {weight.data_ptr()}  # both answers read one storage of the base weight
    assert result["base"].adapter == BASE and result["tuned"].adapter == "wp"
    # the base answer is the plain base model's answer, token for token; the tuned one is not
    prompt = wp_engine.build_prompt(QUESTION)
    assert result["base"].text == generate_texts(fresh, tok, [prompt.input_ids], SHORT)[0]
    assert result["tuned"].text != result["base"].text
    # base scores equal the plain base model's (the adapter really is off); tuned scores differ
    ids = prompt.input_ids + tok(result["tuned"].text, add_special_tokens=False)["input_ids"]
    rows = [(ids, [0] * len(prompt.input_ids) + [1] * (len(ids) - len(prompt.input_ids)))]
    (base_nll, n), = wp_engine.loss(rows, adapter=BASE)[0]
    (tuned_nll, _), = wp_engine.loss(rows)[0]
    (fresh_nll, fresh_n), = token_nll(fresh, rows, pad_id=tok.pad_token_id)
    assert n == fresh_n > 0 and base_nll == pytest.approx(fresh_nll, rel=1e-5)
    assert tuned_nll < base_nll  # the adapter was trained toward answers like its own
    # one copy: the engine holds exactly the base model's parameters plus the LoRA matrices, none stored twice
    params = dict(wp_engine.model.named_parameters())
    assert sum(1 for n in params if "lora_" not in n) == len(dict(fresh.named_parameters()))
    storages = [p.untyped_storage().data_ptr() for p in params.values()]
    assert len(set(storages)) == len(storages)
    assert torch.equal(weight, dict(fresh.named_parameters())[_fresh_name(wp_engine, layer)])


def _fresh_name(engine, layer):
    """The plain model's parameter name of ``layer``'s base weight."""
    name = next(n for n, m in engine.model.named_modules() if m is layer)
    return name.removeprefix("base_model.model.") + ".weight"


def test_compare_stream_yields_growing_pairs(wp_engine):
    s = wp_engine.stream_compare(QUESTION, params=GenerationParams(max_new_tokens=8))
    pairs = list(s)
    assert len(pairs) >= 2
    base, tuned = pairs[-1]
    assert (base, tuned) == (s.base.text, s.tuned.text)
    assert all(len(a[0]) <= len(b[0]) and len(a[1]) <= len(b[1]) for a, b in zip(pairs, pairs[1:]))
    assert pairs[0][0] == ""  # tuned streams first, then base
    assert s.tuned.finish_reason in ("eos", "length") and s.base.finish_reason in ("eos", "length")


def test_same_seed_gives_the_same_answer(wp_engine):
    import torch

    sample = GenerationParams(max_new_tokens=16, do_sample=True, temperature=1.0, top_p=0.95, top_k=0, seed=7)
    rng = torch.get_rng_state()
    first = wp_engine.generate(QUESTION, params=sample).text
    assert torch.equal(rng, torch.get_rng_state())  # a private generator: the global RNG is untouched
    torch.manual_seed(123)  # global RNG state does not matter either
    assert wp_engine.generate(QUESTION, params=sample).text == first
    assert wp_engine.generate(QUESTION, params=sample.replace(seed=8)).text != first
    greedy = wp_engine.generate(QUESTION, params=SHORT).text
    assert wp_engine.generate(QUESTION, params=SHORT).text == greedy
    both = wp_engine.compare(QUESTION, params=sample)
    assert both["tuned"].text == first  # compare uses the same seed and parameters for each side


def test_stop_strings_cut_the_answer(wp_engine):
    full = wp_engine.generate(QUESTION, params=GenerationParams(max_new_tokens=20, do_sample=True, seed=1))
    text = full.text
    assert len(text) > 10
    stop = text[6:9]
    cut = wp_engine.generate(QUESTION, params=GenerationParams(max_new_tokens=20, do_sample=True, seed=1,
                                                               stop=(stop, "never-seen")))
    assert cut.text == text[:text.find(stop)]
    assert cut.finish_reason == "stop_string"
    assert cut.n_tokens < full.n_tokens


def test_batched_answers_stop_generating_at_a_stop_string(wp_engine):
    """Evaluation and probes (no streaming): transformers' StopStringCriteria ends the row, the text is cut."""
    from studio.inference import generate_texts

    model, tok = wp_engine.model, wp_engine.tokenizer
    prompts = [wp_engine.build_prompt(QUESTION).input_ids]
    params = GenerationParams(max_new_tokens=20, do_sample=True, seed=1)
    calls: list[int] = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        (text,) = generate_texts(model, tok, prompts, params)
        full_steps = len(calls)
        stop = text[6:9]
        (cut,) = generate_texts(model, tok, prompts, params.replace(stop=(stop,)))
    finally:
        hook.remove()
    assert len(text) > 10 and cut == text[:text.find(stop)]
    assert len(calls) - full_steps < full_steps  # generation itself ended early, not just the text


def test_stop_scanner_holds_back_partial_stop_strings():
    s = StopScanner(("###",))
    assert s.feed("abc #") == "abc "
    assert s.feed("#") == ""
    assert s.feed("x") == "##x"
    assert s.feed(" ##") == " "
    assert s.feed("# tail") == ""
    assert s.text == "abc ##x " and s.hit == "###"
    plain = StopScanner(())
    assert plain.feed("a#") == "a#" and plain.flush() == ""


def test_stop_button_ends_generation_promptly(wp_engine):
    stop = threading.Event()
    stream = wp_engine.stream(QUESTION, params=GenerationParams(max_new_tokens=1000, repetition_penalty=1.0),
                              stop_event=stop)
    first = next(stream)
    t = time.perf_counter()
    wp_engine.stop()
    rest = list(stream)
    assert time.perf_counter() - t < 5
    assert stream.finish_reason == "stopped"
    assert 0 < stream.n_tokens < 1000
    assert first + "".join(rest) == stream.text


def test_adapter_switching_without_reloading_the_base(wp_run, wp2_run):
    SHORT = GenerationParams(max_new_tokens=16, do_sample=True, seed=3)  # shows small differences between adapters
    engine = ChatEngine.from_run(wp_run, device="cpu")
    _, weight = _base_weight(engine)
    ptr = weight.data_ptr()
    first = engine.generate(QUESTION, params=SHORT).text
    name = engine.load_adapter(wp2_run)
    assert name == "wp2" and set(engine.adapters) == {"wp", "wp2"}
    assert engine.active == "wp"  # loading does not switch
    assert _base_weight(engine)[1].data_ptr() == ptr  # same base weights
    second = engine.generate(QUESTION, params=SHORT, adapter="wp2").text
    assert second != first
    engine.set_adapter("wp2")
    assert engine.generate(QUESTION, params=SHORT).text == second
    assert engine.generate(QUESTION, params=SHORT, adapter="wp").text == first
    alone = ChatEngine.from_run(wp2_run, device="cpu")
    assert alone.generate(QUESTION, params=SHORT).text == second  # each adapter's own output
    base_a = engine.generate(QUESTION, params=SHORT, adapter=BASE).text
    assert base_a == alone.generate(QUESTION, params=SHORT, adapter=BASE).text
    # a checkpoint/adapter folder works too, with a unique name
    assert engine.load_adapter(wp_run / "adapter") == "wp_2"
    with pytest.raises(Exception, match="no adapter named"):
        engine.set_adapter("nope")


def test_four_bit_base_with_its_adapter(wp_run):
    pytest.importorskip("bitsandbytes")
    engine = ChatEngine.from_run(wp_run, device="cpu", quantization="4bit")
    from studio.modeling import describe_loaded

    assert describe_loaded(engine.model).quantization == "4bit"
    result = engine.compare(QUESTION, params=GenerationParams(max_new_tokens=12))
    assert result["base"].text != result["tuned"].text
    layer, weight = _base_weight(engine)
    assert weight.__class__.__name__ == "Params4bit"


# ------------------------------------------------------------------------------------------------------ probes
def test_probe_prompts_are_answered_at_every_checkpoint(one_thread, tmp_path):
    from chat_helpers import WORD_PROBLEMS, make_config
    from studio.events import Probe
    from studio.probes import probe_callback, probe_timeline
    from studio.training import TrainingJob

    cfg = make_config(WORD_PROBLEMS, train__max_steps=4, train__save_steps=2, train__batch_size=4,
                      train__max_length=128, train__tensorboard=False, train__probe_prompts=[QUESTION])
    job = TrainingJob(cfg, tmp_path, extra_callbacks=[probe_callback(params=GenerationParams(max_new_tokens=6))])
    result = job.run()
    assert result.type == "finished", result
    probes = [e for e in job.events.all() if isinstance(e, Probe)]
    assert sorted({p.step for p in probes}) == [0, 2, 4]
    assert {p.prompt for p in probes} == {QUESTION}
    timeline = probe_timeline(job.run_dir)
    assert [s for s, _ in timeline[QUESTION]] == [0, 2, 4]
    # the step-0 answer is the base model's: the same as the playground's base answer to the same prompt
    engine = ChatEngine.from_run(job.run_dir, device="cpu")
    assert engine.generate(QUESTION, params=GenerationParams(max_new_tokens=6), adapter=BASE).text == \
        timeline[QUESTION][0][1]
    assert engine.generate(QUESTION, params=GenerationParams(max_new_tokens=6)).text == timeline[QUESTION][-1][1]


def test_probe_inputs_default_to_heldout_rows(wp_engine):
    from studio.probes import probe_inputs

    cfg = wp_engine.adapters["wp"].config
    inputs = probe_inputs(cfg, wp_engine.tokenizer, n_rows=2)
    assert len(inputs) == 2
    text, ids = inputs[0]
    assert wp_engine.build_prompt(text).input_ids == ids


# ----------------------------------------------------------------------------------------------------- session
def test_studio_caches_the_engine_and_answers_busy_during_a_gpu_run(wp_run, wp2_run, monkeypatch, tmp_path):
    from types import SimpleNamespace

    import studio.session as session
    from studio.errors import BusyError
    from studio.session import Studio

    studio = Studio(runs_dir=tmp_path)
    engine = studio.chat_engine(wp_run, device="cpu")
    assert studio.chat is engine and studio.chat_engine(wp_run, device="cpu") is engine
    assert engine.serves(wp_run, device="cpu") and not engine.serves(wp_run) and not engine.serves(wp2_run)
    # a run training on the GPU: the playground stays off the GPU
    monkeypatch.setattr(session, "_gpu", lambda: True)
    studio.job = SimpleNamespace(alive=True, device="cuda", run_dir=str(tmp_path / "training-run"))
    assert studio.chat_engine(wp_run, device="cpu") is engine  # the CPU engine keeps answering
    with pytest.raises(BusyError, match="training on the GPU"):
        studio.chat_engine(wp_run, device="auto")
    studio.job = SimpleNamespace(alive=False, device="cuda", run_dir="x")  # finished: the GPU is free again
    other = studio.chat_engine(wp2_run, device="cpu")
    assert other is not engine and engine.model is None  # replaced and released
    studio.release_chat()
    assert studio.chat is None


@pytest.mark.slow
def test_chat_memory_bench_holds_one_copy(one_thread, tmp_path):
    from studio.bench.chat import chat_memory

    lines = []
    result = chat_memory(device="cpu", size="small", max_new_tokens=4, report=lines.append, workdir=tmp_path)
    assert result.param_ratio < 0.55  # one base + adapter vs the base twice
    assert result.compare["base_text"] == result.twice["base_text"]
    assert result.compare["tuned_text"] == result.twice["tuned_text"] != result.compare["base_text"]
    assert lines[-1].startswith("chat-memory ratio")
