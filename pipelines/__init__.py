"""The lab's Dataflow jobs, one module (or subpackage) per job, plus what they share.

Every job module exposes `TEMPLATE` (its parameters, the one source for argparse and the
console metadata), `preflight(args, options, on_dataflow=)` and `build_pipeline(pipeline,
args)`; pipelines/registry.py names them and runs them through pipelines/core/launch.py.
Importing a job module never imports TensorFlow: models load on workers, in `setup()`.
"""
