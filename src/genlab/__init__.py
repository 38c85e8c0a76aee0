"""genlab: a local-first workbench for the generative-AI project lifecycle on open models.

Importing genlab is cheap; heavy libraries (torch, transformers) load when a function needs them.
"""

__version__ = "0.1.0"
