"""ORPO's recipe: the preference recipe (:mod:`genlab.alignment.kto.recipe`), whose ``beta`` is ORPO's λ."""

from __future__ import annotations

from pydantic import Field

from genlab.alignment.kto.recipe import PreferenceRecipe


class OrpoRecipe(PreferenceRecipe):
    beta: float = Field(default=0.1, gt=0)  # λ: the weight of the odds-ratio term beside the SFT loss (paper: 0.1)
