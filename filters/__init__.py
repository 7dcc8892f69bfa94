"""DuckDB steps over versions: pass rate, buckets, curriculum, quality, dedup, decontamination (DESIGN §5)."""
