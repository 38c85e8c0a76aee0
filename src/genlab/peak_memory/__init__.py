"""Peak memory measured in a fresh process: three real training steps, or a real generation."""
