"""Alignment: human feedback, reward models, PPO with a KL penalty, DPO and Constitutional AI.

- :mod:`genlab.alignment.feedback` — rankings of completions → pairwise preferences (trl's format);
  :mod:`genlab.alignment.feedback_collect` — a person ranks sampled completions in the terminal.
- :mod:`genlab.alignment.reward` — reward functions: a trained reward model, non-toxicity, any classifier.
- :mod:`genlab.alignment.reward_model` — a reward model trained on pairs (Bradley–Terry);
  :mod:`genlab.alignment.reward_data` — preference data for it (files, rankings, builtin summaries).
- :mod:`genlab.alignment.ppo` — PPO with a value head, a frozen reference and a per-token KL penalty
  (``algorithm``), and the third lab: a policy made less toxic by PPO, measured before/after (``lab``).
- :mod:`genlab.alignment.dpo` (+ ``dpo_data``) — direct preference optimisation through trl.
- :mod:`genlab.alignment.constitutional` — the Constitutional AI pipeline: ``constitution`` (principles),
  ``critique_revision`` (critique → revision → SFT data), ``rlaif`` (AI preference labels → DPO pairs).

Each method that trains a model is one folder exporting ``METHOD`` (:class:`genlab.methods.Method`),
listed in :mod:`genlab.registry`; ``genlab align NAME`` and the lifecycle find it there and get one
:class:`genlab.methods.MethodResult` back.
"""
