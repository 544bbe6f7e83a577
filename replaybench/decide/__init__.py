"""Decisions: statistics, evidence across nights, verdicts, recommendations, drift; and what a
stakeholder needs next to a verdict in the report (`extras`: frontier, money, trend, canary)."""
