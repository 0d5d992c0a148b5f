"""Pedestrian detection and distance estimation for the design job (camera frames in, boxes
and depths out).

`tiling` and `geometry` are pure; `detector` loads TensorFlow only when `load()` is called,
so importing this package (as Beam does on the launcher) stays cheap.
"""
