"""The DirectRunner stream runtime: what a local stream run needs and Dataflow does itself.

Not in the image, and imported by nothing in `pipelines`: the launch finds `run.run_local_stream`
through the entry point group its pyproject.toml declares. The product graph is the same on
every runner (outcomes unwrapped and published with Beam's WriteToPubSub); a local run swaps
in:

    overrides.py   the PTransformOverrides: publish-and-acknowledge, log-and-acknowledge
    publish.py     those steps: publish (behind the runner), then acknowledge the inputs
                   answered
    subscriber.py  the DirectRunner's Pub/Sub client: pulls sized by count and bytes, one
                   bundle ahead, acknowledgements held, Pub/Sub lost -> the run stops
    limits.py      pull and acknowledgement sizes and timeouts
    beam_private.py  the private Beam names used here (the DirectRunner's Pub/Sub read,
                   DoFn signatures and state specs found once, one timestamp epoch)
    ledger.py      pulled messages not yet answered: acknowledge, lease, hand back
    shared.py      the process-wide state the pieces above share (why: in its docstring)
    run.py         run_local_stream: run, drain on SIGTERM, one last true line, exit status

What Dataflow does instead (it never runs this package): its own Pub/Sub source acknowledges
a message only once the first fused stage has processed it and that stage's effects are
written to persistent storage ("Streaming with Pub/Sub" in Dataflow's documentation). These
jobs have no shuffle, so their whole graph, publishing included, is that one stage: an input
is acknowledged only after its outcome is handed to Dataflow's Pub/Sub sink. A publish that
keeps failing (topic deleted, permission removed) fails its work item, and Dataflow retries
a failing streaming work item indefinitely instead of failing the job: the step stalls, the
errors show in the worker logs, the backlog and data freshness grow, nothing is acknowledged
or dropped, until the topic is back (or the job is updated, drained or cancelled). A local
run stops instead, with one line, its input still on the subscription.
"""
