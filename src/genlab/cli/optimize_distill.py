"""`genlab optimize distill`: see genlab.optimize.distill (in progress)."""
