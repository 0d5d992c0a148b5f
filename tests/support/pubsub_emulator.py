"""The Cloud SDK's Pub/Sub emulator for tests: the same helpers the local demo uses."""

from tools.pubsub_emulator import (  # noqa: F401
    EMULATOR,
    PROJECT,
    create_topic,
    create_topic_with_subscription,
    pull,
    running_pubsub_emulator,
    subscription,
    topic,
    wait_for_subscriber,
)
