"""`genlab optimize quantize`: see genlab.optimize.quantize (in progress)."""
