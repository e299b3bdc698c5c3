"""Checkpoint -> metrics: perplexity, generation, answer scoring, results."""
