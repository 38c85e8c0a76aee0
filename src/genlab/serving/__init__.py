"""Deployment: an OpenAI-compatible real-time API over pluggable backends, async jobs, batch transform.

- :mod:`.backend` — the interface the server talks to (genlab engine, llama.cpp, vLLM)
- :mod:`.genlab_backend`, :mod:`.scheduler` — genlab's engine with dynamic batching and several adapters
- :mod:`.app` — ``create_app(config)``: the FastAPI app; routes in :mod:`.routes_openai`,
  :mod:`.routes_jobs`, :mod:`.routes_service`; wire format in :mod:`.protocol`
- :mod:`.completions` — one code path from an OpenAI request to generated text (real-time and jobs)
- :mod:`.config` — ``ServeConfig``, what ``genlab serve`` is told
- :mod:`.limits`, :mod:`.auth`, :mod:`.api_errors`, :mod:`.metrics`, :mod:`.idle` — limits (413, 429),
  API keys (401), OpenAI-shaped errors, Prometheus metrics, scale to zero
- :mod:`.jobs` — the SQLite job store and worker; :mod:`.backends` — optional llama.cpp / vLLM backends
"""
