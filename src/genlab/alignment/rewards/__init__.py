"""Reward functions for GRPO and RLOO (trl's trainers), named in a recipe as ``{spec: weight}``.

Each spec becomes one trl reward function ``(prompts, completions, **columns) -> list[float]``
(trl's own interface: it passes the dataset's other columns, such as ``reference``, by name):

- ``non-toxicity``, ``non-toxicity:<classifier>:<toxic label>``, ``classifier:<model>:<label>``, or a
  trained reward model's folder or name: :mod:`genlab.alignment.reward`'s rewards (the PPO lab's);
- ``rouge1``, ``rouge2``, ``rougeL``: ROUGE F-measure of the completion against the row's reference
  (:mod:`genlab.alignment.rewards.text`);
- ``json-valid``: 1 when the completion is one JSON value, else 0 (:mod:`genlab.alignment.rewards.text`);
- ``python:<module>:<function>``: any function with trl's reward interface
  (:mod:`genlab.alignment.rewards.python_function`).

:mod:`genlab.alignment.rewards.specs` checks the specs (the recipe's field) and builds the functions.
"""

from genlab.alignment.rewards.specs import (
    RewardSpecs,
    build_reward_functions,
    check_reward_spec,
)

__all__ = ["RewardSpecs", "build_reward_functions", "check_reward_spec"]
