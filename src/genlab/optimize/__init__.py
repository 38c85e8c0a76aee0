"""Optimise a model for deployment: quantisation, distillation, pruning, each measured the same way.

- :mod:`genlab.optimize.measure` -- size on disk, parameters, peak memory, tokens/s and quality of a
  model, measured in a fresh process so peak memory is the model's own;
- :mod:`genlab.optimize.report` -- the original beside the result: one table, ``speedup`` and
  ``size_ratio``;
- :mod:`genlab.optimize.artifact` -- optimised model folders (written atomically, with a manifest)
  and how the model layer loads the ones transformers cannot load alone;
- :mod:`genlab.optimize.quantize`, :mod:`genlab.optimize.distill` and :mod:`genlab.optimize.prune`: the registered
  methods, one folder each (:mod:`genlab.registry`).
"""

from genlab.optimize import loaders  # noqa: F401 - registers the loaders of quantised folders with genlab.models
