"""Process -> performance explorer: one row per cell, columns derived through the lineage."""
