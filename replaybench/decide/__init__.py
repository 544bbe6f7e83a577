"""Decisions: statistics, evidence across nights, verdicts, recommendations, drift."""
