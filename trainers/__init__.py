"""Trainers that pull a manifest and train on exactly its bytes (docs/training.md)."""
