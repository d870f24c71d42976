"""First-party plugin jmedbench_ctio (being written)."""
