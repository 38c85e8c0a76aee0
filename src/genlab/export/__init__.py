"""Export: a genlab model or adapter to the files local servers run (GGUF for llama.cpp, an Ollama Modelfile)."""
