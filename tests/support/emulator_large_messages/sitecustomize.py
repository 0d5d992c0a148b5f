"""Test-only: lets a subprocess pull Pub/Sub emulator responses larger than 4 MiB.

Put this folder on the PYTHONPATH of a tool run against the emulator (the jobs' local
runtime makes its own clients with big enough limits, pipelines/local/clients.py). With
PUBSUB_EMULATOR_HOST set, the Pub/Sub client connects through `grpc.insecure_channel(host)`
with no options, so gRPC's default 4 MiB receive limit applies, and one pull of a few camera
frames (3-4 MB each) fails with RESOURCE_EXHAUSTED (googleapis/google-cloud-python#10056).
Against the real service the client sets no limit; this makes the emulator path match it.
"""

import grpc

_insecure_channel = grpc.insecure_channel
_UNLIMITED = ("grpc.max_receive_message_length", "grpc.max_send_message_length")


def _insecure_channel_without_size_limits(target, options=None, compression=None):
    options = list(options or [])
    given = {name for name, _ in options}
    options += [(name, -1) for name in _UNLIMITED if name not in given]
    return _insecure_channel(target, options, compression)


grpc.insecure_channel = _insecure_channel_without_size_limits
