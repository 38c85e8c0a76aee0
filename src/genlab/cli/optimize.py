"""`genlab optimize quantize|distill|prune --model M [...] --eval-data D [--json]`: the optimise stage.

Every subcommand writes an optimised model folder with lineage and prints one table measured in one
run against the original (:class:`genlab.optimize.report.OptimizationReport`): size on disk,
parameters, peak memory, tokens/s and quality; ``--json`` prints ``report.to_dict()``, which holds
``speedup`` and ``size_ratio``. The subcommands live in ``optimize_quantize``, ``optimize_distill``
and ``optimize_prune`` (their shared options in ``optimize_options``); this module puts them together.
"""

from __future__ import annotations

import typer

from genlab.cli.optimize_distill import distill_command
from genlab.cli.optimize_prune import prune_command
from genlab.cli.optimize_quantize import quantize_command

app = typer.Typer(help="Optimise a model for deployment: quantise, distil, prune.", no_args_is_help=True)
app.command("quantize")(quantize_command)
app.command("distill")(distill_command)
app.command("prune")(prune_command)
