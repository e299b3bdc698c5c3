"""Memory planning: estimate a run's peak memory from the model's config, and propose what fits."""
