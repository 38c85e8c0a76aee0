"""Knowledge distillation loss and the Trainer that applies it (Hinton, Vinyals & Dean 2015).

"Distilling the Knowledge in a Neural Network", arXiv:1503.02531. The student learns from the
teacher's whole next-token distribution, softened by a temperature ``T`` so that the small
probabilities of the wrong-but-plausible tokens (the "dark knowledge") carry signal, and from the
ground truth. At every target position ``t`` (the summary and end tokens, as the finetune stage
trains; :mod:`genlab.tuning.data`), with teacher logits ``z_t`` and student logits ``s_t``:

    p_t = softmax(z_t / T),   q_t = softmax(s_t / T)
    L   = T^2 * mean_t KL(p_t || q_t)  +  alpha * mean_t CE(y_t, softmax(s_t))
        = T^2 * mean_t sum_v p_t[v] (log p_t[v] - log q_t[v])  -  alpha * mean_t log softmax(s_t)[y_t]

The ``T^2`` keeps the soft term's gradients the same size as ``T`` changes (they scale as ``1/T^2``,
Hinton et al. section 2). The teacher is frozen and runs without gradients.

Logits are computed only where the loss is: a causal model runs its body over the whole sequence but
its LM head (49k x 576 for the default model, a fifth of its compute per token) only on the target
positions, so a long dialogue with a short summary costs little more than the body.

Why not trl: trl 1.16's ``DistillationTrainer`` (and the experimental GKD trainers) are on-policy --
the student generates its completions every step, which a 2-core CPU cannot afford -- accept causal
LMs only, and have no ground-truth term; the loss above is a few lines on transformers' ``Trainer``,
which brings checkpoints, exact resume and the schedules.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer

from genlab.tuning.features import IGNORE_INDEX

# Configs that change logits after the LM head; such models take the plain full forward pass.
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *, temperature: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, soft, hard)`` for logits at the target positions, ``(N, V)`` each, and their ``(N,)`` labels.

    ``soft = T^2 * mean KL(teacher || student)`` at temperature ``T``; ``hard`` = mean cross-entropy of
    the student (at temperature 1) against ``labels``; ``loss = soft + alpha * hard`` (module docstring).
    """
    vocab = min(student_logits.shape[-1], teacher_logits.shape[-1])  # padded embedding rows hold no token
    student_logits, teacher_logits = student_logits[:, :vocab].float(), teacher_logits[:, :vocab].float()
    teacher_log_p = F.log_softmax(teacher_logits / temperature, dim=-1)  # (N, V)
    student_log_q = F.log_softmax(student_logits / temperature, dim=-1)  # (N, V)
    kl = F.kl_div(student_log_q, teacher_log_p, log_target=True, reduction="none").sum(-1)  # (N,)
    soft = temperature**2 * kl.mean()
    hard = F.cross_entropy(student_logits, labels)
    return soft + alpha * hard, soft, hard


def target_logits(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, labels)`` at the positions that carry loss: ``(N, V)`` and ``(N,)``.

    Causal: position ``t`` predicts token ``t + 1``, so logits ``[:, :-1]`` pair with labels ``[:, 1:]``.
    Encoder-decoder: the decoder reads the labels shifted right and predicts them in place.
    """
    labels = batch["labels"]
    if model.config.is_encoder_decoder:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).logits
        mask = labels != IGNORE_INDEX
        return logits[mask], labels[mask]
    shifted = labels[:, 1:]  # (B, T-1)
    mask = shifted != IGNORE_INDEX
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    body = getattr(model, "base_model", None)
    direct = head is not None and body is not None and body is not model
    if direct and not any(getattr(model.config, name, None) for name in _LOGIT_POSTPROCESSING):
        hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return head(hidden[:, :-1][mask]), shifted[mask]  # (N, H) -> (N, V)
    # a wrapped (DDP) model or one with post-processed logits: the full forward pass
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return logits[:, :-1][mask], shifted[mask]


class DistillationTrainer(Trainer):
    """transformers' Trainer with the loss above; the frozen teacher is held beside, not inside, the model
    (so checkpoints and the saved folder hold the student alone)."""

    def __init__(self, *args: Any, teacher: Any, temperature: float, alpha: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature = temperature
        self.alpha = alpha
        self.model_accepts_loss_kwargs = False  # the loss is a mean per batch: Trainer divides it for accumulation
        self._parts: dict[str, list[float]] = {"soft_loss": [], "hard_loss": []}

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        with torch.no_grad():
            teacher_logits, _ = target_logits(self.teacher, inputs)
        student_logits, labels = target_logits(model, inputs)
        loss, soft, hard = distillation_loss(
            student_logits, teacher_logits, labels, temperature=self.temperature, alpha=self.alpha
        )
        if model.training:
            self._parts["soft_loss"].append(float(soft.detach()))
            self._parts["hard_loss"].append(float(hard.detach()))
        return (loss, {"soft_loss": soft, "hard_loss": hard}) if return_outputs else loss

    def prediction_step(
        self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool, ignore_keys: Any = None
    ) -> tuple[Any, None, None]:
        """Validation loss only: gathering full-vocabulary logits of the eval set would cost gigabytes."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Add the mean soft (KL x T^2) and hard (CE) parts since the last log to the training loss."""
        if "loss" in logs:
            for name, values in self._parts.items():
                if values:
                    logs[name] = sum(values) / len(values)
                    values.clear()
        super().log(logs, *args, **kwargs)

