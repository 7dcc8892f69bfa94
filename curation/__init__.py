"""Data in and out: import, recipes -> versions, mix, split, exports, diff, report (docs/architecture.md)."""
