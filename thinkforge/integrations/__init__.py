"""Glue that lets other trainers score with thinkforge's verifiers (verl's custom reward)."""
