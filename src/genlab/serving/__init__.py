"""Deployment: an OpenAI-compatible real-time API over pluggable backends, async jobs, batch transform.

- :mod:`genlab.serving.backend` — the interface the server talks to (genlab engine, llama.cpp, vLLM).
"""
