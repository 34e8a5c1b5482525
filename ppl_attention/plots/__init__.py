"""Every figure the library draws, one submodule per stage (data, posterior, completion, design, attention).

All functions take tensors / arrays and a path, draw with matplotlib (Agg), and save a PNG atomically.
"""
