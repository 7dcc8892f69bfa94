"""Trainers that pull a manifest and train on exactly its bytes (DESIGN §7)."""
