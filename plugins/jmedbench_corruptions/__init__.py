"""First-party plugin jmedbench_corruptions (being written)."""
