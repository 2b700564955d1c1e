"""Training: data folders and transforms, freezing, the training loop (distributed, checkpointed) and
`finetune`, which ties them together."""
