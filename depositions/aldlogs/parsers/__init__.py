"""Pure readers of ALD tool logs (no Django, no models): importing the package registers them."""

from depositions.aldlogs.parsers import controller, generic, labview

__all__ = ["controller", "generic", "labview"]
