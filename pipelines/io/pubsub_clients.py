"""Every Pub/Sub client this repository makes: the launch's lookups, the local stream
runtime, the tools, the tests and the benchmarks, through `publisher_client()` and
`subscriber_client()`. Importing this module imports neither Beam nor the client library.

Why one factory: gRPC's Python default receive limit is 4 MiB. Google's Pub/Sub transport
lifts it, but with PUBSUB_EMULATOR_HOST set the client library connects through
`grpc.insecure_channel(host)` with no options (googleapis/google-cloud-python#10056), so a
single 6 MB message, or a pull of a few camera frames, failed every pull with
RESOURCE_EXHAUSTED. Both clients here are made on a channel with explicit limits, for the
emulator and for Google's endpoint alike.
"""

from __future__ import annotations

import os

from pipelines.core.deadletters import MAX_MESSAGE_BYTES

# A Pub/Sub message is at most MAX_MESSAGE_BYTES (10 MB) and a publish request at most 10 MB;
# a pull returns as many messages as asked, so its response is bounded by the puller's
# sizing (local_runtime/limits.py), which stays well under this. One message always fits.
CHANNEL_MESSAGE_BYTES = 64 * 2**20
assert CHANNEL_MESSAGE_BYTES > 2 * MAX_MESSAGE_BYTES
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", CHANNEL_MESSAGE_BYTES),
    ("grpc.max_send_message_length", CHANNEL_MESSAGE_BYTES),
)


def _channel_factory(transport_class):
    """How the transport makes its channel: to the emulator when PUBSUB_EMULATOR_HOST is set
    (plain text, no credentials), else to Google's endpoint with the default credentials;
    either way with CHANNEL_OPTIONS in place of the limits it would set."""
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    if emulator:
        import grpc

        return grpc.insecure_channel(emulator, options=list(CHANNEL_OPTIONS))

    def create_channel(host, **kwargs):
        ours = dict(CHANNEL_OPTIONS)
        options = [(k, v) for k, v in kwargs.pop("options", None) or () if k not in ours]
        return transport_class.create_channel(
            host, options=options + list(CHANNEL_OPTIONS), **kwargs
        )

    return create_channel


def subscriber_client():
    """The client library's SubscriberClient (pull, acknowledge, subscribe, and the
    generated client's calls), on a channel with CHANNEL_OPTIONS."""
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    channel = _channel_factory(SubscriberGrpcTransport)
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


def publisher_client():
    """The client library's PublisherClient (batching `publish`; `.api` is the generated
    client, one request per call), on a channel with CHANNEL_OPTIONS."""
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

    channel = _channel_factory(PublisherGrpcTransport)
    return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel))
