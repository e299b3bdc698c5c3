"""Examples -> token batches -> the training loop -> checkpoints."""
