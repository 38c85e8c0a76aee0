"""`genlab optimize prune`: see genlab.optimize.prune (in progress)."""
