"""Scoring models: scorecards (and, later, GBDTs) stored in inspectable formats, never pickle."""
