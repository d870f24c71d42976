"""Example jmedbench plugin package."""
