"""The Pub/Sub client factory's clients take messages bigger than Pub/Sub allows, on the
emulator and on Google's endpoint."""

import pytest


@pytest.mark.parametrize("kind", ["subscriber_client", "publisher_client"])
def test_the_clients_take_messages_bigger_than_pub_sub_allows(monkeypatch, kind):
    import grpc

    from pipelines.core.deadletters import MAX_MESSAGE_BYTES
    from pipelines.io import pubsub_clients as clients

    made = []
    real = grpc.insecure_channel

    def insecure_channel(target, options=None, compression=None):
        made.append((target, dict(options or ())))
        return real(target, options, compression)

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
    monkeypatch.setattr(grpc, "insecure_channel", insecure_channel)
    getattr(clients, kind)()
    ((target, options),) = made
    assert target == "127.0.0.1:9"
    assert options["grpc.max_receive_message_length"] > MAX_MESSAGE_BYTES + 1_000_000
    assert options["grpc.max_send_message_length"] > MAX_MESSAGE_BYTES + 1_000_000


def test_google_endpoint_clients_get_the_same_limits(monkeypatch):
    from google.auth.credentials import AnonymousCredentials
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    from pipelines.io import pubsub_clients as clients

    made = []

    def create_channel(host, **kwargs):
        made.append(dict(kwargs["options"]))
        return original(host, **kwargs)

    original = SubscriberGrpcTransport.create_channel
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(SubscriberGrpcTransport, "create_channel", create_channel)
    monkeypatch.setattr("google.auth.default", lambda **kw: (AnonymousCredentials(), "p"))
    clients.subscriber_client()
    assert made and made[0]["grpc.max_receive_message_length"] == clients.CHANNEL_MESSAGE_BYTES


def test_the_factory_is_the_only_place_a_pub_sub_client_is_made():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    factory = root / "pipelines" / "io" / "pubsub_clients.py"
    made = []
    for folder in ("pipelines", "local_runtime", "tools", "tests", "bench"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in ("PublisherClient", "SubscriberClient") and path != factory:
                    made.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not made, made
