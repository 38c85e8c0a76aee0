"""The shared Hugging Face Trainer run: every method built on a ``transformers.Trainer`` (fine-tuning,
distillation, DPO, the reward model, trl's GRPO/RLOO/KTO/ORPO) goes through it.

- :mod:`genlab.training.session` -- :class:`TrainerSession`: callbacks (lineage losses, progress bar,
  the caller's own, e.g. tracking), Ctrl-C as "checkpoint and stop", resume from the newest complete
  checkpoint, timing and the loss history;
- :mod:`genlab.training.checkpoints` -- finding, checking and cleaning ``checkpoint-<step>`` folders;
- :mod:`genlab.training.callbacks` -- the Trainer callbacks themselves;
- :mod:`genlab.training.saving` -- the trained adapter or model, written atomically with its base's fingerprint.

It sits below the methods (tuning, alignment, optimize) and above models and lineage.
"""
