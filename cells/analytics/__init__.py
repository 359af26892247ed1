"""Derived views of a stored cycling series: dQ/dV, rate capability, symmetric-cell analysis.

Pure (polars, numpy, scipy; no Django): the selectors read the Parquet series and the cell's
fields and hand plain values in; every result carries the method and parameters it used.
"""
