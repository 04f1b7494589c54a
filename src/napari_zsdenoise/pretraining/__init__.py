"""Masked pre-training of MPI weights: corpus (image folders, procedural images) and the training loop."""
