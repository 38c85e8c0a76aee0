"""`genlab agent cot|pal|react "question"`: reasoning and acting on a model."""

from __future__ import annotations

from typing import Annotated

import typer

from genlab.cli.output import console, err_console, print_json

app = typer.Typer(help="Answer a question by chain-of-thought, a program (PAL), or a ReAct agent.", no_args_is_help=True)

Question = Annotated[str, typer.Argument(help="The question.")]
Model = Annotated[str, typer.Option(help="Pack name, model folder, GGUF file, openai:MODEL, or scripted:REPLIES.json.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object (the whole transcript).")]
MaxTokens = Annotated[int | None, typer.Option(min=1, help="Tokens the model may write per step.")]
UnsafeSandbox = Annotated[bool, typer.Option(
    "--unsafe-sandbox", help="Run model code even where the kernel refuses a sandbox layer; warns.")]


def _run(mode: str, question: str, model: str, as_json: bool, **options: object) -> None:
    from genlab.apps.agents.run import run_agent
    from genlab.apps.sandbox import probe_layers

    if options.get("unsafe_sandbox"):
        err_console.print(probe_layers().unsafe_warning(), style="bold red", highlight=False, markup=False, soft_wrap=True)
    with err_console.status(f"{mode} agent on {model}"):
        result = run_agent(mode, question, model=model, **options)  # type: ignore[arg-type]
    if as_json:
        print_json(result.to_dict())
    else:
        for number, step in enumerate(result.steps, 1):
            if mode == "react":
                action = f"{step.action}[{step.argument}]" if step.action else "(no action)"
                console.print(f"[dim]{number}.[/] Thought: {step.thought}\n   Action: {action}", markup=True, highlight=False)
                if step.action != "Finish":
                    console.print(f"   Observation: {step.observation}", markup=False, highlight=False)
            elif mode == "pal":
                console.print(f"program:\n{result.program}\noutput:\n{result.program_output}", markup=False, highlight=False)
            else:
                console.print(step.model_output.strip(), markup=False, highlight=False)
        console.print(f"answer: {result.answer if result.ok else '(none)'}", markup=False, highlight=False)
        console.print(f"recorded as run [bold]{result.run_id}[/]")
    if not result.ok:
        err_console.print(f"error: {result.error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command(name="cot")
def cot_command(
    question: Question, model: Model = "smollm2-135m-instruct", max_tokens: MaxTokens = None, as_json: AsJson = False
) -> None:
    """Chain-of-thought: worked exemplars, then the answer after "The answer is"."""
    _run("cot", question, model, as_json, max_tokens=max_tokens)


@app.command(name="pal")
def pal_command(
    question: Question, model: Model = "smollm2-135m-instruct", max_tokens: MaxTokens = None, as_json: AsJson = False,
    unsafe_sandbox: UnsafeSandbox = False,
) -> None:
    """PAL: the model writes Python; the sandbox runs it; the printed result is the answer."""
    _run("pal", question, model, as_json, max_tokens=max_tokens, unsafe_sandbox=unsafe_sandbox)


@app.command(name="react")
def react_command(
    question: Question,
    model: Model = "smollm2-135m-instruct",
    index: Annotated[str | None, typer.Option(help="Search a RAG index made by `genlab rag ingest`.")] = None,
    corpus: Annotated[str | None, typer.Option(help="Search a folder of text files.")] = None,
    max_steps: Annotated[int, typer.Option(min=1, help="Thought/Action/Observation steps before giving up.")] = 8,
    max_tokens: MaxTokens = None,
    as_json: AsJson = False,
    unsafe_sandbox: UnsafeSandbox = False,
) -> None:
    """ReAct: Search, Lookup, Calculate (in the sandbox) and Finish, step by step."""
    _run("react", question, model, as_json, index=index, corpus=corpus, max_steps=max_steps, max_tokens=max_tokens,
         unsafe_sandbox=unsafe_sandbox)
