"""Data: loaders, splits, formatting, preference pairs, and the builtin demo data."""

from genlab.data.dialogsum import DIALOGSUM_HUB_ID, load_dialogsum
from genlab.data.example import Example
from genlab.data.loaders import DataError, FieldMapping, load_examples
from genlab.data.splits import split_examples, train_validation_test

__all__ = [
    "DIALOGSUM_HUB_ID",
    "DataError",
    "Example",
    "FieldMapping",
    "load_dialogsum",
    "load_examples",
    "split_examples",
    "train_validation_test",
]
