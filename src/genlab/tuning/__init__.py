"""Fine-tuning: training data, methods (full, LoRA, prompt tuning, ...), the trainer and its report."""
