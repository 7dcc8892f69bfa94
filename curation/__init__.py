"""Data in and out: import, recipes -> versions, mix, split, exports, diff, report (DESIGN §6)."""
