"""`genlab feedback collect|import`: people rank completions; rankings become preference pairs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from genlab.cli.generation_options import MaxNewTokens, Seed, Temperature, settings_from_flags
from genlab.cli.output import console, print_json, print_table

app = typer.Typer(help="Human feedback: rank completions, turn rankings into preference pairs.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _ask(question: str) -> str:
    """One answer from stdin (a terminal or a pipe); the end of input raises EOFError, which stops."""
    sys.stdout.write(question)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stdout.write("\n")
        raise EOFError
    if not sys.stdin.isatty():  # piped answers: echo them so the transcript reads as a session
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
    return line


def _show(text: str) -> None:
    typer.echo(text)


@app.command("collect")
def collect_command(
    model: Annotated[str, typer.Option(help="Pack name, model folder, GGUF file or hub id.")],
    prompts: Annotated[Path, typer.Option(help="Prompts: a .jsonl file with a \"prompt\" field, or text, one a line.")],
    k: Annotated[int, typer.Option("-k", help="Completions sampled per prompt.")] = 3,
    output: Annotated[Path, typer.Option(help="Rankings are appended here, one prompt a line.")] = Path("rankings.jsonl"),
    max_new_tokens: MaxNewTokens = 64,
    temperature: Temperature = 1.0,
    seed: Seed = None,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Wrap in the model's chat template.")] = True,
) -> None:
    """Sample k completions per prompt and rank them here (`2 1 3`, `2=1 3` for a tie, `s` skip, `q` stop)."""
    from genlab.alignment.feedback_collect import collect_rankings

    settings = settings_from_flags(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    result = collect_rankings(model, prompts, output, k=k, settings=settings, chat=chat, ask=_ask, show=_show)
    title, columns, rows = result.table()
    print_table(title, columns, rows)
    console.print(f"recorded as run [bold]{result.run_id}[/]")


@app.command("import")
def import_command(
    rankings: Annotated[Path, typer.Argument(help="A rankings JSONL file: prompt, completions, ranks (1 = best).")],
    output: Annotated[Path, typer.Option(help="The preference pairs (prompt, chosen, rejected) as JSONL.")],
    as_json: JsonFlag = False,
) -> None:
    """Turn rankings into pairwise preferences, best first; a malformed line fails the import."""
    from genlab.alignment.feedback import import_rankings

    result = import_rankings(rankings, output)
    if as_json:
        print_json(result.to_dict())
        return
    title, columns, rows = result.table()
    print_table(title, columns, rows)
    console.print(f"recorded as run [bold]{result.run_id}[/]")
