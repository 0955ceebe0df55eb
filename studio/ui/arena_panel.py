"""The Chat tab's blind arena: two models answer one prompt, sides shuffled and names hidden until the vote; votes go
to ``<runs>/arena/votes.jsonl``; win rates, a ranking, and an export as preference pairs.

Glue only: ``studio.arena`` does the rounds, the votes, the statistics and the export. The round in progress is
per-browser ``gr.State``; the engine is Studio's shared one (both sides are adapters on one copy of the base).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import gradio as gr

from studio.ui.common import AppContext, error_box, error_text

STATS_HEADERS = ["Pair", "Votes", "Wins / losses / ties / both bad", "First model's win rate"]
RANK_HEADERS = ["#", "Model", "Rating (Bradley-Terry, Elo scale)", "Votes"]
HIDDEN = "_Names are hidden until you vote._"


@dataclass
class ArenaHandles:
    model_a: gr.Dropdown
    model_b: gr.Dropdown
    prompt: gr.Textbox
    send: gr.Button
    left: gr.Textbox
    right: gr.Textbox
    votes: dict[str, gr.Button]
    edit: gr.Textbox
    reveal: gr.Markdown
    stats: gr.Dataframe
    ranking: gr.Dataframe
    export: gr.Button
    export_file: gr.File
    error: gr.Markdown
    on_send: Callable[..., Iterator[tuple]]
    on_vote: Callable[..., tuple]
    on_export: Callable[[], tuple]


def standings(runs_dir: Path) -> tuple[list[list[Any]], list[list[Any]], str | None]:
    """(pair table, ranking table, a note about damaged lines) from the votes file."""
    from studio.arena.stats import ranking, summary_rows
    from studio.arena.votes import problems_line, read_votes

    vf = read_votes(runs_dir)
    ranked = ranking(vf.votes)
    rank_rows = [[i, r.model, r.rating, r.votes] for i, r in enumerate(ranked, 1)] if len(ranked) > 2 else []
    return summary_rows(vf.votes), rank_rows, problems_line(vf)


def _open_run(studio: Any) -> Callable[[Path], Any]:
    """Loads a run's engine through Studio, reusing the loaded one when it has the same base model."""
    from studio import runs
    from studio.config import load_config

    def open_run(run: Path) -> Any:
        engine = studio.chat
        if engine is not None and getattr(engine, "model", None) is not None:
            model = load_config(Path(run) / runs.CONFIG).model
            loaded = getattr(engine, "base_config", None)
            if engine.base_model == model.name_or_path and getattr(loaded, "quantization", None) == model.quantization:
                return engine
        return studio.chat_engine(run)

    return open_run


def render(studio: Any, ctx: AppContext) -> ArenaHandles:
    from studio.arena.match import model_choices

    choices = model_choices(studio.runs_dir)
    first = choices[0][1] if choices else None
    second = next((v for _, v in choices if v != first and not v.startswith("base@")), first)
    with gr.Accordion("Blind arena: which answer is better?", open=False, elem_id="arena-panel"):
        gr.Markdown("Pick two models: the base, a run, or one of its checkpoints. One prompt goes to both; the sides "
                    "are shuffled and the names hidden until you vote. Votes are kept in the runs folder "
                    "(`arena/votes.jsonl`) and export as preference pairs for DPO, ORPO, SimPO or KTO.")
        with gr.Row(equal_height=True):
            model_a = gr.Dropdown(choices, value=first, label="Model 1", allow_custom_value=True,
                                  info="The base, a run, a checkpoint, or type an adapter folder", elem_id="arena-model-a")
            model_b = gr.Dropdown(choices, value=second, label="Model 2", allow_custom_value=True,
                                  elem_id="arena-model-b")
            max_tokens = gr.Number(value=128, precision=0, minimum=1, maximum=2048, label="Max answer tokens",
                                   elem_id="arena-max-tokens")
            sample = gr.Checkbox(value=False, label="Sample (temperature 0.7)", elem_id="arena-sample")
        with gr.Row(equal_height=True):
            prompt = gr.Textbox(placeholder="A prompt for both models…", show_label=False, scale=5,
                                elem_id="arena-prompt")
            send = gr.Button("Ask both", variant="primary", scale=0, min_width=110, elem_id="arena-send")
        error = gr.Markdown(visible=False, elem_classes=["studio-error"], elem_id="arena-error")
        with gr.Row(equal_height=True):
            left = gr.Textbox(label="A", lines=8, max_lines=20, interactive=False, elem_id="arena-left")
            right = gr.Textbox(label="B", lines=8, max_lines=20, interactive=False, elem_id="arena-right")
        with gr.Row():
            votes = {"left": gr.Button("A is better", interactive=False, elem_id="arena-vote-left"),
                     "right": gr.Button("B is better", interactive=False, elem_id="arena-vote-right"),
                     "tie": gr.Button("Tie", interactive=False, elem_id="arena-vote-tie"),
                     "both_bad": gr.Button("Both bad", interactive=False, elem_id="arena-vote-bad")}
        edit = gr.Textbox(label="Optional: the better answer as it should be (saved with the vote, exported as an "
                                "SFT row)", lines=2, elem_id="arena-edit")
        reveal = gr.Markdown(HIDDEN, elem_id="arena-reveal")
        pairs, ranks, note = standings(studio.runs_dir)
        stats = gr.Dataframe(headers=STATS_HEADERS, value=pairs or None, interactive=False, label="Win rates",
                             elem_id="arena-stats")
        ranking = gr.Dataframe(headers=RANK_HEADERS, value=ranks or None, interactive=False,
                               label="Ranking (three or more models judged)", elem_id="arena-ranking")
        with gr.Row(equal_height=True):
            export = gr.Button("Export votes as training data", elem_id="arena-export")
            export_file = gr.File(label="Preference pairs (JSONL)", interactive=False, elem_id="arena-export-file")
        round_state = gr.State(None)

    buttons = list(votes.values())

    def enable(on: bool) -> list[dict]:
        return [gr.update(interactive=on) for _ in buttons]

    def on_send(text: str, a: str | None, b: str | None, tokens: Any, sampled: bool) -> Iterator[tuple]:
        from studio.arena.match import new_round, open_round_engine, play
        from studio.inference.params import GenerationParams

        try:
            params = GenerationParams(max_new_tokens=int(tokens or 128), do_sample=bool(sampled))
            rnd = new_round(text, a or "", b or "", rng=random.Random())
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            yield (gr.skip(), gr.skip(), gr.skip(), None, error_box(error_text(err)), *enable(False))
            return
        same = " The same model is on both sides." if rnd.same_model else ""
        yield "", "", f"_Answering… names are hidden until you vote.{same}_", None, error_box(None), *enable(False)
        try:
            engine = open_round_engine(_open_run(studio), rnd)
            for left_text, right_text in play(engine, rnd, params):
                yield left_text, right_text, gr.skip(), None, gr.skip(), *enable(False)
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            gr.Warning(text := error_text(err))
            yield gr.skip(), gr.skip(), HIDDEN, None, error_box(text), *enable(False)
            return
        yield rnd.left_answer, rnd.right_answer, f"_Both answered: vote to see the names.{same}_", rnd, \
            gr.skip(), *enable(True)

    def on_vote(choice: str, rnd: Any, edited: str) -> tuple:
        from studio.arena.match import reveal as reveal_text
        from studio.arena.match import vote

        try:
            if rnd is None:
                raise_missing()
            v = vote(rnd, choice, studio.runs_dir, edited_answer=edited)
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            still_open = rnd is not None and rnd.done and not rnd.voted
            return (gr.skip(), gr.skip(), gr.skip(), error_box(error_text(err)), rnd, gr.skip(), *enable(still_open))
        pair_rows, rank_rows, note = standings(studio.runs_dir)
        return reveal_text(rnd, v), pair_rows or None, rank_rows or None, error_box(note), rnd, "", *enable(False)

    def on_export() -> tuple:
        from studio.arena.export import export_votes
        from studio.arena.votes import ARENA, read_votes

        try:
            folder = Path(studio.runs_dir) / ARENA
            done = export_votes(read_votes(studio.runs_dir).votes, folder / "pairs.jsonl",
                                sft_out=folder / "sft.jsonl")
            gr.Info(done.line())
            return str(done.pairs_path), error_box(None)
        except Exception as err:  # noqa: BLE001 - shown as one sentence
            return None, error_box(error_text(err))

    def refresh(a: str | None, b: str | None) -> tuple:
        opts = model_choices(studio.runs_dir)
        values = [v for _, v in opts]
        return (gr.update(choices=opts, value=a if a in values else (values[0] if values else None)),
                gr.update(choices=opts, value=b if b in values else (values[-1] if values else None)))

    hidden = dict(api_visibility="undocumented", show_progress="hidden")
    send_outputs = [left, right, reveal, round_state, error, *buttons]
    send.click(on_send, [prompt, model_a, model_b, max_tokens, sample], send_outputs, api_name="arena_send",
               concurrency_limit=1, concurrency_id="chat-generate", show_progress="hidden")
    vote_outputs = [reveal, stats, ranking, error, round_state, edit, *buttons]
    for choice, button in votes.items():
        button.click(lambda rnd, edited, c=choice: on_vote(c, rnd, edited), [round_state, edit], vote_outputs,
                     api_name=f"arena_vote_{choice}", **hidden)
    export.click(on_export, outputs=[export_file, error], api_name="arena_export", **hidden)
    model_a.focus(refresh, [model_a, model_b], [model_a, model_b], **hidden)
    model_b.focus(refresh, [model_a, model_b], [model_a, model_b], **hidden)
    if ctx.tabs is not None:
        ctx.tabs.change(refresh, [model_a, model_b], [model_a, model_b], **hidden)
    return ArenaHandles(model_a, model_b, prompt, send, left, right, votes, edit, reveal, stats, ranking, export,
                        export_file, error, on_send, on_vote, on_export)


def raise_missing() -> None:
    from studio.errors import ConfigError

    raise ConfigError("ask both models a prompt first (Ask both), then vote")
