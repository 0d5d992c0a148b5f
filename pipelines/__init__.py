"""The lab's Dataflow jobs, one module (or subpackage) per job, plus what they share.

Every job module exposes `TEMPLATE` (its parameters, the one source for argparse and the
console metadata), `preflight(args, options)`, `build_pipeline(pipeline, args)` and `run(argv)`.
Importing a job module never imports TensorFlow: models load on workers, in `setup()`.
"""
