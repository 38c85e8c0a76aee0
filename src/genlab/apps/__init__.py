"""LLM-powered applications: model providers, retrieval-augmented generation, reasoning and acting agents."""
