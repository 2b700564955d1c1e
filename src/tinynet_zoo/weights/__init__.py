"""Weights: the manifest of hosted checkpoints, fetching and verifying files, key layouts, inheritance, loading
tensors into a built model, and the model-folder format shared on the Hugging Face hub. Imports core only."""
