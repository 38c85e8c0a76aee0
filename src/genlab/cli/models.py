"""`genlab models list|show|pull`."""

from __future__ import annotations

from typing import Annotated

import typer

from genlab.cli.output import console, err_console, human_count, print_json, print_pairs, print_table

app = typer.Typer(help="Browse model cards and fetch models (the select stage).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("list")
def list_command(as_json: JsonFlag = False) -> None:
    """List the catalog: the packs on this machine and well-known hub models."""
    from genlab.models.catalog import list_cards

    cards = list_cards()
    if as_json:
        print_json([card.model_dump() for card in cards])
        return
    print_table(
        "genlab model catalog",
        ["name", "params", "family", "objective", "context", "licence", "offline", "source"],
        [
            (
                c.name,
                human_count(c.params) + ("" if c.params_source == "published" else " (measured)"),
                c.family,
                c.objective,
                c.context_window,
                c.license,
                "yes" if c.offline else "no",
                c.source,
            )
            for c in cards
        ],
    )


@app.command("show")
def show_command(name: str, as_json: JsonFlag = False) -> None:
    """Show one model card."""
    from genlab.models.catalog import get_card

    card = get_card(name)
    if as_json:
        print_json(card.model_dump())
        return
    print_pairs(f"model card: {card.name}", card_rows(card))


def card_rows(card) -> list[tuple[str, object]]:  # noqa: ANN001 - a ModelCard
    rows: list[tuple[str, object]] = [
        ("source", card.source),
        ("architecture", card.architecture),
        ("family", card.family),
        ("pre-training objective", card.objective),
        ("parameters", f"{card.params:,} ({card.params_source})" if card.params else "?"),
        ("context window", f"{card.context_window:,} tokens" if card.context_window else "?"),
        ("licence", card.license),
        ("modality", card.modality),
        ("tasks", ", ".join(card.tasks)),
        ("instruction-tuned", "yes" if card.instruction_tuned else "no"),
        ("available offline", "yes" if card.offline else "no"),
    ]
    if card.shape is not None:
        s = card.shape
        rows.append(
            (
                "shape",
                f"{s.num_layers} layers, hidden {s.hidden_size}, {s.num_heads} heads "
                f"({s.num_kv_heads} KV), MLP {s.intermediate_size}, vocab {s.vocab_size:,}",
            )
        )
    if card.description:
        rows.append(("description", card.description))
    return rows


@app.command("pull")
def pull_command(name: str) -> None:
    """Make a model available offline: install/convert a pack, or download a hub model."""
    from genlab.models.pull import pull_model

    with err_console.status(f"pulling {name}"):
        result = pull_model(name)
    console.print(f"{result.name}: ready at {result.path} ({result.params:,} parameters); run {result.run_id}")
