"""Scoring models: points scorecards and gradient-boosted trees, trained, validated, registered, explained and
monitored; stored in inspectable formats (a JSON table, LightGBM's text model), never pickle."""
