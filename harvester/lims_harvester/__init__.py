"""lims-harvest: sends instrument files from watched folders to the LIMS, each version once."""

__version__ = "0.1.0"
