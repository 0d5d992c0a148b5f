"""Pedestrian detection and distance estimation for the design job (camera frames in, boxes
and depths out), shaped like `mnist/`:

    tiling.py, geometry.py   pure: tiles and box merging; distance from a box
    detector.py              decoding and the SSDLite detector (TensorFlow only in `load()`)
    handler.py               the detector as a RunInference ModelHandler
    frames.py                pure: input messages -> frames, results -> output messages
    transforms.py            DetectPedestrians, the composite
    options.py               the job's arguments -> camera, detector; the detector's launch check

The template (parameters, checks, pipeline) is pipelines/jobs/pedestrian_depth.py. Importing
any of them (as Beam does on the launcher) imports no TensorFlow.
"""
