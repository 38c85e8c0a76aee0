"""Alignment: human feedback, reward models, PPO with a KL penalty, DPO and Constitutional AI.

- :mod:`genlab.alignment.feedback` — rankings of completions → pairwise preferences (trl's format);
  :mod:`genlab.alignment.feedback_collect` — a person ranks sampled completions in the terminal.
- :mod:`genlab.alignment.reward` — reward functions: a trained reward model, non-toxicity, any classifier.
- :mod:`genlab.alignment.reward_training` — a reward model trained on pairs (Bradley–Terry);
  :mod:`genlab.alignment.reward_data` — preference data for it (files, rankings, builtin summaries).
- :mod:`genlab.alignment.ppo` — PPO with a value head, a frozen reference and a per-token KL penalty.
- :mod:`genlab.alignment.ppo_run` — the third lab: a policy made less toxic by PPO, measured before/after.
- :mod:`genlab.alignment.dpo` (+ ``dpo_data``) — direct preference optimisation through trl.
- :mod:`genlab.alignment.constitutional` — the Constitutional AI pipeline: ``constitution`` (principles),
  ``critique_revision`` (critique → revision → SFT data), ``rlaif`` (AI preference labels → DPO pairs).

Each runnable stage has a recipe (YAML, ``key=value`` overrides) and returns a result with
``run_id``, ``to_dict()`` and ``table()`` (a title, column names and rows) that ``genlab align`` prints.
"""
