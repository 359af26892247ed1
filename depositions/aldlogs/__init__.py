"""ALD tool logs: read the tool's files, find every pulse, check the run against its recipe.

- ``parsers/``: pure readers (no Django, no models): LabVIEW data logs and companions
  (``labview``), controller event logs and recipe CSVs (``controller``), mapped CSV/TSV logs
  (``generic``); their shared text and unit helpers (``tabular``, ``units``) and result types
  (``types``). ``parsers.PARSERS`` lists them (kind ``ald_log``); ``depositions.apps``
  registers them.
- ``plans``: the tool's own files (execution table, controller recipe) as a planned sequence.
- ``pulses``: pulse detection and alignment to a plan; ``checks``: the run checks and verdict.
- ``services``: the ingest handler, re-check and link (ORM); ``selectors``: what pages show.

The package itself imports nothing, so importing a parser loads neither Django nor the checks.
"""
