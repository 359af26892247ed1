"""Anneals' furnace side: the planned temperature profile, the furnace-log parser, the checks
of a log against the plan (all pure), and the ingestion handler and pages' services."""
