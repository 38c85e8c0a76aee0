"""`genlab generate` and `genlab chat`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from genlab.cli.generation_options import (
    MaxNewTokens,
    NumReturn,
    RepetitionPenalty,
    Seed,
    Stop,
    Temperature,
    TopK,
    TopP,
    settings_from_flags,
)
from genlab.cli.output import err_console, print_json
from genlab.errors import GenlabError

if TYPE_CHECKING:
    from genlab.generation.chat_session import ChatSession
    from genlab.generation.engine import Completion, GenerationEngine
    from genlab.generation.settings import GenerationSettings

ModelOption = Annotated[str, typer.Option(help="Pack name, model folder, GGUF file or hub id.")]


def generate_command(
    model: ModelOption = "smollm2-135m-instruct",
    prompt: Annotated[str | None, typer.Option(help="The prompt text.")] = None,
    file: Annotated[Path | None, typer.Option(help="Read the prompt from this file.")] = None,
    max_new_tokens: MaxNewTokens = 128,
    temperature: Temperature = 0.0,
    top_k: TopK = 0,
    top_p: TopP = 1.0,
    repetition_penalty: RepetitionPenalty = 1.0,
    stop: Stop = None,
    seed: Seed = None,
    num_return_sequences: NumReturn = 1,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Wrap in the model's chat template.")] = True,
    stream: Annotated[bool, typer.Option(help="Print tokens as they come.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    adapter: Annotated[str | None, typer.Option(help="A peft adapter: a folder or a name in $GENLAB_HOME/adapters.")] = None,
) -> None:
    """Generate text for one prompt (with --adapter: the model with that adapter applied, as `genlab eval` does)."""
    from genlab.generation.run import generate_recorded, stream_recorded
    from genlab.models.adapters import resolve_adapter

    if (prompt is None) == (file is None):
        raise GenlabError("give exactly one of --prompt TEXT or --file F.")
    if file is not None:
        if not file.is_file():
            raise GenlabError(f"no such prompt file: {file}.")
        prompt = file.read_text(encoding="utf-8")
    settings = settings_from_flags(
        max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        repetition_penalty=repetition_penalty, stop=stop, seed=seed, num_return_sequences=num_return_sequences,
    )  # fmt: skip
    adapter_path = str(resolve_adapter(adapter)) if adapter is not None else None  # a bad name fails before loading
    if stream and not as_json:
        if num_return_sequences > 1:
            raise GenlabError("--stream prints one answer; drop --num-return-sequences or --stream.")
        with err_console.status(f"loading {model}"):
            if adapter_path is None:
                pieces = stream_recorded(model, prompt, settings, chat=chat)
            else:
                pieces = _stream_adapted(model, adapter_path, prompt, settings, chat=chat)
            first = next(pieces, "")
        sys.stdout.write(first)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    with err_console.status(f"generating with {model}" + (f" + {adapter}" if adapter else "")):
        if adapter_path is None:
            completion = generate_recorded(model, prompt, settings, chat=chat)
        else:
            completion = _generate_adapted(model, adapter_path, prompt, settings, chat=chat)
    if as_json:
        choices = [
            {"text": c.text, "tokens": len(c.token_ids), "finish_reason": c.finish_reason} for c in completion.choices
        ]
        print_json(
            {
                "text": choices[0]["text"],
                "tokens": choices[0]["tokens"],
                "finish_reason": choices[0]["finish_reason"],
                "prompt_tokens": completion.prompt_tokens,
                "choices": choices,
                "settings": settings.model_dump(),
            }
        )
        return
    for index, choice in enumerate(completion.choices):
        if len(completion.choices) > 1:
            typer.echo(f"--- {index + 1} ---")
        typer.echo(choice.text)


# Glue until genlab.generation.run takes an adapter: the same recorded run as generate_recorded, with the
# adapter merged into the base (genlab.models.adapters.merge_adapter, as `genlab eval --adapter` does).


@contextlib.contextmanager
def _adapted_engine(model: str, adapter: str, config: dict[str, Any]) -> Iterator[tuple[GenerationEngine, Any]]:
    from genlab.generation.api import engine_for
    from genlab.lineage import record_run
    from genlab.models.adapters import merge_adapter
    from genlab.models.load import load_model

    with record_run("generate", {"model": model, "adapter": adapter, **config}) as run:
        loaded = load_model(model)
        if loaded.path is not None:
            run.use(loaded.path, "model", {"model": model})
        run.use(adapter, "adapter", {"base": loaded.name})
        yield engine_for(merge_adapter(loaded, adapter)), run


def _generate_adapted(model: str, adapter: str, prompt: str, settings: GenerationSettings, *, chat: bool) -> Completion:
    config = {"settings": settings.model_dump(), "chat": chat, "prompt_chars": len(prompt)}
    with _adapted_engine(model, adapter, config) as (engine, run):
        (completion,) = engine.generate([prompt], settings, chat=chat)
        run.log_metrics({"prompt_tokens": completion.prompt_tokens, "new_tokens": completion.new_tokens})
    return completion


def _stream_adapted(model: str, adapter: str, prompt: str, settings: GenerationSettings, *, chat: bool) -> Iterator[str]:
    with _adapted_engine(model, adapter, {"settings": settings.model_dump(), "chat": chat, "stream": True}) as (engine, run):
        produced = 0
        for piece in engine.stream(prompt, settings, chat=chat):
            produced += len(piece)
            yield piece
        run.log_metric("new_chars", produced)


def chat_command(
    model: ModelOption = "smollm2-135m-instruct",
    system: Annotated[str | None, typer.Option(help="A system message to start the conversation.")] = None,
    max_new_tokens: MaxNewTokens = 256,
    temperature: Temperature = 0.0,
    top_k: TopK = 0,
    top_p: TopP = 1.0,
    repetition_penalty: RepetitionPenalty = 1.0,
    stop: Stop = None,
    seed: Seed = None,
) -> None:
    """Talk with a model, turn by turn, answers streamed (`/reset` forgets, `/exit` or Ctrl-D ends)."""
    from genlab.generation.chat_session import ChatSession

    settings = settings_from_flags(
        max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        repetition_penalty=repetition_penalty, stop=stop, seed=seed,
    )  # fmt: skip
    with err_console.status(f"loading {model}"):
        session = ChatSession.start(model, settings, system=system)
    with session.engine.hold_packed_weights():  # reordered once for the whole conversation
        _converse(session, model)


def _converse(session: ChatSession, model: str) -> None:
    interactive = sys.stdin.isatty()
    if interactive:
        err_console.print(f"chatting with {model} (context {session.context_window} tokens); /exit to end")
    while True:
        if interactive:
            sys.stderr.write("you> ")
            sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            break
        message = line.strip()
        if not message:
            continue
        if message in {"/exit", "/quit"}:
            break
        if message == "/reset":
            session.reset()
            err_console.print("(history cleared)")
            continue
        if interactive:
            sys.stdout.write("model> ")
        for piece in session.send(message):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
