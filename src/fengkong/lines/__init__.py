"""Live credit lines: the status state machine, guardrails, line review and its distributed runner."""
