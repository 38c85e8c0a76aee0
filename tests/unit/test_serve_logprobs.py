"""Log-probabilities, echo, token prompts, logit_bias and penalties through the official openai client.

A real uvicorn server on loopback runs the tiny random model (the serving tests' one); every number
is checked against a reference computed here with transformers directly on the same model folder:
one forward pass over prompt + answer, ``log_softmax`` of the raw logits (the distribution the
server documents), and for the penalties a greedy loop applying OpenAI's formula by hand.
"""

from __future__ import annotations

import httpx
import openai
import pytest
import torch
from test_serve_support import PROMPTS, make_tiny_assets, running_server
from transformers import AutoModelForCausalLM, AutoTokenizer

from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from genlab.serving.genlab_backend import GenlabBackend

KEY = "logprobs-key"
TOL = 1e-3  # the server decodes on oneDNN-packed weights: the same sums in another order


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_assets(tmp_path_factory.getbasetemp() / "serve-assets")


@pytest.fixture(scope="module")
def server(assets, tmp_path_factory: pytest.TempPathFactory):
    config = ServeConfig(
        model="tiny", api_key=KEY, embedder="hashing-32", max_concurrent=8, max_tokens_limit=64,
        jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite", max_n=2,
    )  # fmt: skip
    backend = GenlabBackend(str(assets.base), max_batch=4, model_id="tiny")
    with running_server(create_app(config, backend=backend)) as url:
        yield url


@pytest.fixture(scope="module")
def reference(assets):
    model = AutoModelForCausalLM.from_pretrained(assets.base, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(assets.base)


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=60)


def post(server: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(server + path, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)


def ref_logprobs(reference, ids: list[int]) -> torch.Tensor:
    """(len(ids) - 1, vocab): log-probabilities of the raw distribution after each prefix."""
    model, _ = reference
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    return torch.log_softmax(logits.float(), dim=-1)[:-1]


def greedy(reference, prompt: list[int], steps: int, frequency: float = 0.0, presence: float = 0.0) -> list[tuple[int, torch.Tensor]]:
    """Greedy decoding by hand: (picked token, raw log-probabilities) per step, end-of-sequence included.

    The pick follows OpenAI's penalty formula: mu[j] - c[j] * frequency - (c[j] > 0) * presence,
    c[j] counting token j among the generated tokens.
    """
    model, tokenizer = reference
    ids, generated, steps_taken = list(prompt), [], []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([ids])).logits[0, -1].float()
            counts = torch.bincount(torch.tensor(generated, dtype=torch.long), minlength=logits.shape[0]).float()
            token = int((logits - counts * frequency - (counts > 0).float() * presence).argmax())
            steps_taken.append((token, torch.log_softmax(logits, dim=-1)))
            if token == tokenizer.eos_token_id:
                break
            generated.append(token)
            ids.append(token)
    return steps_taken


def chat_ids(reference, text: str) -> list[int]:
    _, tokenizer = reference
    formatted = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
    return tokenizer(formatted, add_special_tokens=False)["input_ids"]


# --- chat ---------------------------------------------------------------------------------------------


def test_chat_logprobs_are_the_raw_model_distribution(client, reference) -> None:
    _, tokenizer = reference
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=8, temperature=0,
        logprobs=True, top_logprobs=3,
    )  # fmt: skip
    content = reply.choices[0].logprobs.content
    expected = greedy(reference, chat_ids(reference, PROMPTS[0]), 8)
    assert len(content) == len(expected)  # one entry per picked token, end-of-sequence too
    text = b"".join(bytes(entry.bytes) for entry in content[: reply.usage.completion_tokens]).decode("utf-8", "replace")
    assert text == reply.choices[0].message.content
    for entry, (token, row) in zip(content, expected, strict=True):
        assert entry.token == tokenizer.decode([token])
        assert entry.logprob == pytest.approx(float(row[token]), abs=TOL)
        assert len(entry.top_logprobs) == 3
        assert [t.logprob for t in entry.top_logprobs] == pytest.approx(torch.topk(row, 3).values.tolist(), abs=TOL)
        assert entry.top_logprobs[0].token == entry.token  # greedy picks the most likely token


def test_chat_without_logprobs_has_none_and_top_logprobs_alone_is_refused(client, server) -> None:
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0)
    assert reply.choices[0].logprobs is None
    response = post(server, "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2})
    assert response.status_code == 400 and response.json()["error"]["param"] == "top_logprobs"
    response = post(server, "/v1/chat/completions",
                    {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "logprobs": True, "top_logprobs": 21})  # fmt: skip
    assert response.status_code == 400 and response.json()["error"]["param"] == "top_logprobs"


def test_streamed_chat_logprobs_add_up_to_the_whole_answers(client) -> None:
    kwargs = dict(model="tiny", messages=[{"role": "user", "content": PROMPTS[1]}], max_tokens=10, temperature=0,
                  logprobs=True, top_logprobs=2)  # fmt: skip
    whole = client.chat.completions.create(**kwargs).choices[0].logprobs.content
    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    streamed = [entry for chunk in chunks if chunk.choices and chunk.choices[0].logprobs for entry in chunk.choices[0].logprobs.content]
    assert sum(1 for chunk in chunks if chunk.choices and chunk.choices[0].logprobs) > 1  # it came in pieces
    assert [(e.token, round(e.logprob, 4)) for e in streamed] == [(e.token, round(e.logprob, 4)) for e in whole]


# --- completions -----------------------------------------------------------------------------------------


def test_completion_logprobs_in_the_legacy_format(client, reference) -> None:
    _, tokenizer = reference
    reply = client.completions.create(model="tiny", prompt=PROMPTS[2], max_tokens=6, temperature=0, logprobs=2)
    logprobs = reply.choices[0].logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == len(logprobs.text_offset)
    assert "".join(logprobs.tokens[: reply.usage.completion_tokens]) == reply.choices[0].text
    assert logprobs.text_offset[0] == 0 and logprobs.text_offset == sorted(logprobs.text_offset)
    expected = greedy(reference, tokenizer(PROMPTS[2])["input_ids"], 6)
    assert logprobs.tokens == [tokenizer.decode([token]) for token, _ in expected]
    for step, (token, row) in enumerate(expected):
        assert logprobs.token_logprobs[step] == pytest.approx(float(row[token]), abs=TOL)
        assert len(logprobs.top_logprobs[step]) <= 2
        assert max(logprobs.top_logprobs[step].values()) == pytest.approx(logprobs.token_logprobs[step], abs=1e-6)


def test_streamed_completion_logprobs_match(client) -> None:
    kwargs = dict(model="tiny", prompt=PROMPTS[3], max_tokens=8, temperature=0, logprobs=1)
    whole = client.completions.create(**kwargs).choices[0].logprobs
    chunks = list(client.completions.create(**kwargs, stream=True))
    parts = [c.choices[0].logprobs for c in chunks if c.choices and c.choices[0].logprobs]
    assert [t for p in parts for t in p.tokens] == whole.tokens
    assert [o for p in parts for o in p.text_offset] == whole.text_offset  # offsets run on across chunks
    assert [round(v, 4) for p in parts for v in p.token_logprobs] == [round(v, 4) for v in whole.token_logprobs]


def test_echo_scores_the_prompt_without_generating(client, reference) -> None:
    _, tokenizer = reference
    prompt = tokenizer(PROMPTS[3])["input_ids"]
    expected = ref_logprobs(reference, prompt)
    for max_tokens in (0, 1):  # lm-evaluation-harness's loglikelihood requests send 1
        reply = client.completions.create(model="tiny", prompt=PROMPTS[3], max_tokens=max_tokens, echo=True, logprobs=1, temperature=0)
        logprobs = reply.choices[0].logprobs
        assert reply.choices[0].text.startswith(PROMPTS[3])
        assert len(logprobs.token_logprobs) == len(prompt) + max_tokens
        assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
        scored = logprobs.token_logprobs[1 : len(prompt)]
        assert scored == pytest.approx([float(expected[j - 1, prompt[j]]) for j in range(1, len(prompt))], abs=TOL)
        assert reply.usage.completion_tokens <= max_tokens
    assert client.completions.create(model="tiny", prompt=PROMPTS[3], max_tokens=0, echo=True).choices[0].text == PROMPTS[3]


def test_echo_in_a_mixed_batch_of_requests(client, reference) -> None:
    """Scoring rows prefill apart from the others, then all share the decode steps: nobody's answer changes."""
    import concurrent.futures

    def alone(prompt: str) -> str:
        return client.completions.create(model="tiny", prompt=prompt, max_tokens=8, temperature=0).choices[0].text

    expected = [alone(p) for p in PROMPTS[:4]]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        plain = [pool.submit(alone, p) for p in PROMPTS[:4]]
        scored = [
            pool.submit(lambda p=p: client.completions.create(model="tiny", prompt=p, max_tokens=1, echo=True, logprobs=1, temperature=0))
            for p in PROMPTS[:4]
        ]
        assert [f.result() for f in plain] == expected
        for prompt, future in zip(PROMPTS[:4], scored, strict=True):
            assert future.result().choices[0].text.startswith(prompt)


def test_token_prompts_read_as_their_text(client, reference, server) -> None:
    _, tokenizer = reference
    ids = [tokenizer(p)["input_ids"] for p in PROMPTS[:2]]
    by_text = client.completions.create(model="tiny", prompt=PROMPTS[:2], max_tokens=5, temperature=0)
    by_ids = client.completions.create(model="tiny", prompt=ids, max_tokens=5, temperature=0)
    one = client.completions.create(model="tiny", prompt=ids[0], max_tokens=5, temperature=0)
    assert [c.text for c in by_ids.choices] == [c.text for c in by_text.choices]
    assert one.choices[0].text == by_text.choices[0].text and by_ids.usage.prompt_tokens == sum(map(len, ids))
    echoed = client.completions.create(model="tiny", prompt=ids[0], max_tokens=0, echo=True, logprobs=0)
    assert echoed.choices[0].text == tokenizer.decode(ids[0])
    bad = post(server, "/v1/completions", {"model": "tiny", "prompt": [1, 2, 10**6]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "prompt" and "vocabulary" in bad.json()["error"]["message"]
    empty = post(server, "/v1/completions", {"model": "tiny", "prompt": [[1, 2], []]})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]


# --- logit_bias and penalties ---------------------------------------------------------------------------


def test_logit_bias_changes_the_answer(client, reference, server) -> None:
    _, tokenizer = reference
    kwargs = dict(model="tiny", messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=4, temperature=0, logprobs=True)
    plain = client.chat.completions.create(**kwargs).choices[0].logprobs.content
    prompt = chat_ids(reference, PROMPTS[0])
    first = int(ref_logprobs(reference, prompt + [0])[-1].argmax())  # the greedy first token
    assert plain[0].token == tokenizer.decode([first])
    banned = client.chat.completions.create(**kwargs, logit_bias={str(first): -100}).choices[0].logprobs.content
    assert banned[0].token != plain[0].token
    assert banned[0].logprob < plain[0].logprob  # log-probabilities stay the raw model's: bias is not in them
    forced_id = tokenizer(" the", add_special_tokens=False)["input_ids"][0]
    forced = client.chat.completions.create(**kwargs, logit_bias={str(forced_id): 100}).choices[0]
    assert forced.message.content == tokenizer.decode([forced_id] * 4)
    bad = post(server, "/v1/completions", {"model": "tiny", "prompt": "Hi", "logit_bias": {"abc": 1}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "logit_bias"
    bad = post(server, "/v1/completions", {"model": "tiny", "prompt": "Hi", "logit_bias": {"5": 101}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "logit_bias"
    bad = post(server, "/v1/completions", {"model": "tiny", "prompt": "Hi", "logit_bias": {"999999": 1}})
    assert bad.status_code == 400 and "vocabulary" in bad.json()["error"]["message"]


@pytest.mark.parametrize(("frequency", "presence"), [(1.5, 0.0), (0.0, 2.0), (0.7, -0.4)])
def test_penalties_follow_openais_formula(client, reference, frequency, presence) -> None:
    _, tokenizer = reference
    generated = [token for token, _ in greedy(reference, tokenizer(PROMPTS[4])["input_ids"], 10, frequency, presence)]
    reply = client.completions.create(
        model="tiny", prompt=PROMPTS[4], max_tokens=10, temperature=0, frequency_penalty=frequency, presence_penalty=presence
    )
    plain = client.completions.create(model="tiny", prompt=PROMPTS[4], max_tokens=10, temperature=0)
    assert reply.choices[0].text == tokenizer.decode(generated, skip_special_tokens=True)
    if frequency >= 1.5 or presence >= 2.0:
        assert reply.choices[0].text != plain.choices[0].text  # strong enough to matter on this model


# --- tokenizer endpoints, embeddings, backends without the features -----------------------------------


def test_tokenize_and_detokenize_in_vllms_shape(server, reference) -> None:
    from lm_eval.utils import check_remote_tokenizer_support

    _, tokenizer = reference
    body = post(server, "/tokenize", {"prompt": PROMPTS[1], "return_token_strs": True}).json()
    assert body["tokens"] == tokenizer(PROMPTS[1])["input_ids"] and body["count"] == len(body["tokens"])
    assert body["max_model_len"] == 512 and "".join(body["token_strs"]) == PROMPTS[1]
    chat = post(server, "/tokenize", {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]}).json()
    assert chat["tokens"] == chat_ids(reference, "Hi")
    assert post(server, "/detokenize", {"tokens": body["tokens"]}).json() == {"prompt": PROMPTS[1]}
    info = httpx.get(server + "/tokenizer_info", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert info["eos_token"] == tokenizer.eos_token and info["chat_template"] == tokenizer.chat_template
    assert post(server, "/tokenize", {"model": "nope", "prompt": "x"}).status_code == 404
    assert post(server, "/detokenize", {"tokens": [10**6]}).status_code == 400
    assert httpx.post(server + "/tokenize", json={"prompt": "x"}).status_code == 401  # the API key guards them
    assert check_remote_tokenizer_support(server + "/v1/completions", auth_token=KEY)  # lm-eval's own probe


def test_token_ids_for_an_embedder_without_a_tokenizer_are_a_400(server) -> None:
    response = post(server, "/v1/embeddings", {"model": "hashing-32", "input": [[1, 2, 3]]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "input"


class _PlainBackend(GenlabBackend):
    features = frozenset()  # a backend that honours none of the optional fields (as llama.cpp's)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logprobs": 1}, "logprobs"),
        ({"echo": True}, "echo"),
        ({"logit_bias": {"3": 5}}, "logit_bias"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"prompt": [1, 2, 3]}, "prompt"),
    ],
)
def test_a_backend_without_a_feature_refuses_its_field(assets, tmp_path, extra, param) -> None:
    from fastapi.testclient import TestClient

    config = ServeConfig(model="tiny", embedder="hashing-32", jobs_db=tmp_path / "jobs.sqlite", record_lineage=False)
    app = create_app(config, backend=_PlainBackend(str(assets.base), max_batch=2, model_id="tiny"))
    with TestClient(app) as test_client:
        response = test_client.post("/v1/completions", json={"model": "tiny", "prompt": "Hi", "max_tokens": 2, **extra})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param and "not supported" in response.json()["error"]["message"]
