"""Pipelines of runs: Noisy Student's rounds (teacher -> pseudo labels on disk -> noised student -> ...)."""
