"""Constitutional AI on a tiny random model: supervised rows, a position-symmetric judge, DPO-ready pairs, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genlab.alignment.constitution import (
    Constitution, ConstitutionError, Principle, load_constitution, load_prompts, parse_constitution,
)  # fmt: skip
from genlab.alignment.constitutional.pipeline import ConstitutionalRecipe
from genlab.alignment.critique_revision import critique_and_revise, write_revisions
from genlab.alignment.dpo_data import read_pairs, write_pairs
from genlab.alignment.rlaif import LETTERS, ai_preference_pairs, judge, judge_context, judge_question
from genlab.config import RecipeError, load_recipe, validate_recipe
from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.lineage import LineageStore
from genlab.models.load import LoadedModel, load_model
from tests.conftest import run_cli

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
PROMPTS = [
    "Write a rude note for my noisy neighbour.",
    "Tell me it is fine to skip my seatbelt.",
    "Make up a fact about cats that sounds true.",
    "Which city has the worst people?",
]
SAMPLING = GenerationSettings(max_new_tokens=6, temperature=1.0, seed=5)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genlab.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-causal"), "causal", seed=1)


@pytest.fixture(scope="module")
def tiny(tiny_folder: Path) -> LoadedModel:
    return load_model(str(tiny_folder))


@pytest.fixture(scope="module")
def constitution() -> Constitution:
    return load_constitution(RECIPES / "constitution.yaml")


# --- the constitution and prompts ----------------------------------------------------------------------


def test_the_shipped_constitution_prompts_and_recipe_validate(constitution: Constitution) -> None:
    assert 4 <= len(constitution.principles) <= 6
    for principle in constitution.principles:
        assert principle.critique_request and principle.revision_request and principle.comparison.endswith("?")
    prompts = load_prompts(RECIPES / "data" / "red-team-prompts.jsonl")
    assert 20 <= len(prompts) <= 30 and len(set(prompts)) == len(prompts)
    recipe = load_recipe(RECIPES / "constitutional.yaml", ConstitutionalRecipe)
    assert recipe.model == "smollm2-135m-instruct" and recipe.stages.dpo and recipe.judge.both_orders
    assert (RECIPES / recipe.constitution).is_file() and (RECIPES / recipe.prompts).is_file()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"principles": [{"name": "polite", "revision_request": "r", "comparison": "c?"}]},
         "principle 1 (polite) has no critique_request."),
        ({"principles": [{"name": "a", "critique_request": "c", "revision_request": "r", "comparison": "q?",
                          "tone": 1}]},
         "principle 1 (a) has an unknown field 'tone'"),
        ({"principles": [{"name": "a", "critique_request": "c", "revision_request": "r", "comparison": "q?"}] * 2},
         "principle names must be unique, and 'a' appears more than once."),
        ({"principles": []}, "principles"),
        ({"principles": [{"name": "a", "critique_request": "  ", "revision_request": "r", "comparison": "q?"}]},
         "critique_request"),
        (["not", "a", "mapping"], "must hold a mapping"),
    ],
)  # fmt: skip
def test_constitution_problems_are_one_sentence(raw: object, expected: str) -> None:
    with pytest.raises(ConstitutionError) as caught:
        parse_constitution(raw, where="constitution c.yaml")
    message = str(caught.value)
    assert expected in message and message.startswith("constitution c.yaml") and message.endswith(".")
    assert "\n" not in message


def test_a_constitution_file_that_is_not_yaml_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("principles: [unclosed\n")
    with pytest.raises(ConstitutionError, match=r"is not valid YAML") as caught:
        load_constitution(path)
    assert "\n" not in str(caught.value)


def test_recipe_rules_across_stages_are_one_sentence() -> None:
    with pytest.raises(RecipeError, match="stages.dpo needs stages.ai_feedback") as caught:
        validate_recipe({"name": "x", "stages": {"ai_feedback": False}}, ConstitutionalRecipe)
    assert "\n" not in str(caught.value)
    with pytest.raises(RecipeError, match="generation.temperature must be above 0"):
        validate_recipe({"name": "x", "generation": {"temperature": 0}}, ConstitutionalRecipe)
    validate_recipe({"name": "x", "generation": {"temperature": 0}, "stages": {"ai_feedback": False, "dpo": False}},
                    ConstitutionalRecipe)  # fmt: skip


# --- the supervised stage ------------------------------------------------------------------------------


def test_critique_revision_writes_one_row_per_prompt_with_every_field(
    tiny: LoadedModel, constitution: Constitution, tmp_path: Path
) -> None:
    engine = GenerationEngine(tiny, batch_size=4)
    rows = critique_and_revise(engine, PROMPTS, constitution, SAMPLING, chat=True, seed=3, progress=False)
    path = write_revisions(tmp_path / "sft.jsonl", rows)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["prompt"] for line in lines] == PROMPTS
    names = {p.name for p in constitution.principles}
    for line in lines:
        assert set(line) == {"prompt", "response", "initial", "critique", "principle"}
        assert line["principle"] in names and all(isinstance(line[k], str) for k in line)
    # Seeded: the same seed draws the same principles and samples the same text.
    again = critique_and_revise(engine, PROMPTS, constitution, SAMPLING, chat=True, seed=3, progress=False)
    assert again == rows


# --- the AI judge ---------------------------------------------------------------------------------------


def test_judge_is_symmetric_when_both_orders_are_asked(tiny: LoadedModel, constitution: Constitution) -> None:
    principle = constitution.principles[0]
    x, y = "Sure, I can help you with that.", "No, go away."
    forward, backward = judge(tiny, [(PROMPTS[0], x, y, principle), (PROMPTS[0], y, x, principle)], chat=True)
    assert forward.prob_first + backward.prob_first == pytest.approx(1.0, abs=1e-9)
    assert (forward.prob_first > 0.5) != (backward.prob_first > 0.5)  # swapping the answers flips the preference
    assert forward.confidence == pytest.approx(backward.confidence, abs=1e-9)

    # By hand from the letter probabilities: x as (A) in one question, x as (B) in the other.
    from genlab.evaluation.benchmarks.multiple_choice import score_choices

    questions = [judge_question(PROMPTS[0], a, b, principle) for a, b in ((x, y), (y, x))]
    contexts = [judge_context(tiny, question, chat=True) for question in questions]
    shown_a, shown_b = score_choices(tiny, contexts, [LETTERS, LETTERS], choice_prefix="")
    assert forward.prob_first == pytest.approx((shown_a.probabilities[0] + shown_b.probabilities[1]) / 2, abs=1e-12)
    assert forward.by_order == pytest.approx((shown_a.probabilities[0], shown_b.probabilities[1]))


def test_one_order_alone_is_not_symmetric_on_this_model(tiny: LoadedModel, constitution: Constitution) -> None:
    """The position bias that asking both orders cancels is really there: without it, P(x≻y) + P(y≻x) ≠ 1."""
    principle = constitution.principles[0]
    x, y = "Sure, I can help you with that.", "No, go away."
    items = [(PROMPTS[0], x, y, principle), (PROMPTS[0], y, x, principle)]
    forward, backward = judge(tiny, items, chat=True, both_orders=False)
    assert abs(forward.prob_first + backward.prob_first - 1.0) > 1e-4


def test_ai_pairs_are_valid_dpo_rows_and_follow_the_judge(
    tiny: LoadedModel, constitution: Constitution, tmp_path: Path
) -> None:
    engine = GenerationEngine(tiny, batch_size=4)
    outcome = ai_preference_pairs(engine, PROMPTS, constitution, SAMPLING, chat=True, seed=2, progress=False)
    assert outcome.judged + outcome.skipped_same == len(PROMPTS)
    assert len(outcome.pairs) + outcome.skipped_low_confidence == outcome.judged and outcome.pairs
    rows = read_pairs(write_pairs(tmp_path / "pairs.jsonl", outcome.pairs))  # what genlab align dpo reads
    by_name = {p.name: p for p in constitution.principles}
    for row in rows:
        extra = dict(row.extra)
        assert row.prompt in PROMPTS and row.chosen != row.rejected
        assert extra["principle"] in by_name and 0.5 < extra["confidence"] <= 1.0
        (verdict,) = judge(tiny, [(row.prompt, row.chosen, row.rejected, by_name[extra["principle"]])], chat=True)
        assert verdict.prob_first > 0.5 and verdict.confidence == pytest.approx(extra["confidence"], abs=1e-6)
    confident = ai_preference_pairs(
        engine, PROMPTS, constitution, SAMPLING, chat=True, seed=2, min_confidence=0.999, progress=False
    )
    # The same seed samples the same answers, so the stricter run keeps exactly the confident pairs of the first.
    assert confident.pairs == [p for p in outcome.pairs if dict(p.extra)["confidence"] >= 0.999]


# --- the whole pipeline from the command line --------------------------------------------------------


def test_cli_runs_every_stage_with_limit_2_and_links_the_child_runs(tiny_folder: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    recipe = tmp_path / "constitutional.yaml"
    recipe.write_text(
        f"name: tiny-cai\nconstitution: {RECIPES / 'constitution.yaml'}\nprompts: prompts.jsonl\n"
        "generation:\n  max_new_tokens: 6\n  temperature: 1.0\n  seed: 4\n"
    )
    result = run_cli(
        "align", "constitutional", str(recipe), f"model={tiny_folder}", "limit=2", "dpo.training.max_steps=2",
        "dpo.lora.target_modules=all-linear", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["prompts"] == 2 and out["revisions"] == 2 and out["pairs"] == 2
    assert 0.5 <= out["mean_confidence"] <= 1.0
    assert out["dpo"]["held_out_pairs"] == 1 and out["dpo"]["train_pairs"] == 1
    assert set(out["dpo"]["before"]) == {"reward_accuracy", "reward_margin", "loglik_accuracy", "loglik_margin"}
    assert len(Path(out["sft_dataset"]).read_text().splitlines()) == 2

    with LineageStore() as store:
        parent = store.get_run(out["run_id"])
        children = [row["child_id"] for row in store._conn.execute(
            "SELECT child_id FROM links WHERE parent_type = 'run' AND parent_id = ? AND relation = 'child'",
            (parent.id,),
        )]  # fmt: skip
        kinds = sorted(store.get_run(child).kind for child in children)
        dpo_inputs = store.artifacts_of(out["child_runs"]["dpo"], "input")
        feedback_outputs = store.artifacts_of(out["child_runs"]["ai_feedback"], "output")
    assert parent.kind == "constitutional" and parent.status == "completed"
    assert kinds == ["ai_feedback", "critique_revision", "dpo"]
    assert {a.id for a in feedback_outputs if a.kind == "dataset"} <= {a.id for a in dpo_inputs}  # pairs feed DPO
