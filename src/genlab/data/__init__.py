"""Data: loaders, splits, formatting, preference pairs, and the builtin demo data."""
