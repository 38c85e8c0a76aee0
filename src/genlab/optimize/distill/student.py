"""The student of a distillation: the teacher with fewer layers, or a smaller model sharing its tokenizer.

**Fewer layers.** The student is built from the teacher's own config with ``N`` transformer layers
(each stack: a T5's encoder and decoder both keep ``N``), then initialised from the teacher: the
embeddings, final norm and LM head are copied whole, and student layer ``i`` gets the weights of
teacher layer ``keep[i]``. ``keep`` is spread evenly over the teacher's layers and always holds the
first and the last (30 -> 15 keeps 0, 2, 4, ..., 26, 29: "every other layer", as DistilBERT did --
Sanh et al. 2019, arXiv:1910.01108 -- but ending on the layer that feeds the head). The first layer
matters twice for T5: only its block owns the relative-position bias the others reuse.

Building from the config (rather than slicing the teacher's ``ModuleList``) gives every layer its
right index for the KV cache (``layer_idx``) and a config whose ``num_hidden_layers`` (and
``layer_types``, where the architecture has one) tells the truth, so the saved folder is a plain
transformers model that any tool loads.

**A model given by name.** Distillation compares the two next-token distributions position by
position, so it needs one vocabulary: a student whose tokenizer maps any token to another id is
refused (the course's "do not mix tokenizers").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from genlab.errors import InvalidValueError

# The config attribute each stack's layer count lives in, by where the stack sits in the model.
_CAUSAL_STACKS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers")
_SEQ2SEQ_STACKS = {"encoder.block": "num_layers", "decoder.block": "num_decoder_layers"}


@dataclass
class Student:
    model: Any  # the student transformers model, ready to train
    layers_kept: dict[str, list[int]] = field(default_factory=dict)  # stack -> teacher layer per student layer
    teacher_layers: dict[str, int] = field(default_factory=dict)  # stack -> the teacher's layer count


def layers_to_keep(total: int, keep: int) -> list[int]:
    """``keep`` teacher layer indices spread evenly over ``total``, first and last included (ascending)."""
    if not 1 <= keep <= total:
        raise InvalidValueError(f"student_layers={keep} is not allowed: the teacher has {total} layers, so give 1 to {total}.")
    if keep == 1:
        return [0]
    return [round(i * (total - 1) / (keep - 1)) for i in range(keep)]


def layer_stacks(model: Any) -> dict[str, Any]:
    """The model's stacks of transformer layers by dotted path: ``{"model.layers": ModuleList}`` for a
    Llama, the encoder's and decoder's blocks for a T5."""
    paths = list(_SEQ2SEQ_STACKS) if model.config.is_encoder_decoder else list(_CAUSAL_STACKS)
    found = {}
    for path in paths:
        module = model
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if module is not None:
            found[path] = module
            if not model.config.is_encoder_decoder:
                break  # a causal LM has one stack
    if not found:
        raise InvalidValueError(
            f"cannot find the transformer layers of a {model.config.model_type!r} model to drop some; "
            "give a smaller --student model instead."
        )
    return found


def shrink_teacher(teacher: Any, student_layers: int | None = None) -> Student:
    """A student with ``student_layers`` layers per stack (default: half, rounded up), initialised from the teacher."""
    stacks = layer_stacks(teacher)
    config = copy.deepcopy(teacher.config)
    kept: dict[str, list[int]] = {}
    for path, layers in stacks.items():
        n = student_layers if student_layers is not None else (len(layers) + 1) // 2
        kept[path] = layers_to_keep(len(layers), n)
        _set_layer_count(config, path, kept[path], len(layers))
    student = type(teacher)(config)  # same class, fewer layers; weights overwritten below
    _copy_weights(teacher, student, kept)
    student.generation_config = copy.deepcopy(teacher.generation_config)
    student.to(dtype=next(teacher.parameters()).dtype)
    return Student(student, kept, {path: len(layers) for path, layers in stacks.items()})


def _set_layer_count(config: Any, path: str, keep: list[int], total: int) -> None:
    if path in _SEQ2SEQ_STACKS:
        setattr(config, _SEQ2SEQ_STACKS[path], len(keep))
        return
    config.num_hidden_layers = len(keep)  # attribute_map sends this to n_layer etc. where names differ
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == total:  # sliding/full attention per layer
        config.layer_types = [layer_types[i] for i in keep]


def _copy_weights(teacher: Any, student: Any, kept: dict[str, list[int]]) -> None:
    """Student parameter ``<stack>.<i>.<rest>`` <- teacher ``<stack>.<kept[i]>.<rest>``; every other one as named."""
    source = teacher.state_dict()
    target = {}
    for key in student.state_dict():
        name = key
        for path, keep in kept.items():
            if key.startswith(path + "."):
                index, rest = key[len(path) + 1 :].split(".", 1)
                name = f"{path}.{keep[int(index)]}.{rest}"
                break
        target[key] = source[name]
    student.load_state_dict(target, strict=True)


def check_same_tokenizer(teacher: Any, student: Any, student_name: str) -> None:
    """Refuse a student whose tokenizer is not the teacher's (same token -> id map), in one sentence."""
    teacher_vocab = teacher.tokenizer.get_vocab()
    student_vocab = student.tokenizer.get_vocab()
    if teacher_vocab == student_vocab:
        return
    differ = sum(1 for token, index in teacher_vocab.items() if student_vocab.get(token) != index)
    differ += sum(1 for token in student_vocab if token not in teacher_vocab)
    raise InvalidValueError(
        f"the student {student_name} does not share the teacher's tokenizer ({differ} tokens differ), and "
        "distillation compares the two models' next-token distributions token by token, so do not mix "
        "tokenizers: pick a student from the teacher's own family or drop layers with --student-layers."
    )


def check_same_kind(teacher: Any, student: Any, student_name: str) -> None:
    if bool(teacher.is_encoder_decoder) != bool(student.is_encoder_decoder):
        kinds = {True: "an encoder-decoder", False: "a decoder-only"}
        raise InvalidValueError(
            f"the student {student_name} is {kinds[student.is_encoder_decoder]} model and the teacher is "
            f"{kinds[teacher.is_encoder_decoder]} one; distil into a model of the same kind."
        )
