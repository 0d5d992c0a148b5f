"""The DirectRunner's Pub/Sub read pulls bigger batches once the mnist_stream job asks."""

from apache_beam.runners.direct import transform_evaluator

from pipelines.direct_pubsub import PULL_MAX_MESSAGES, _BiggerPulls, use_bigger_pulls


class FakeSubscriber:
    def __init__(self):
        self.pulls = []
        self.closed = False

    def pull(self, **kwargs):
        self.pulls.append(kwargs)
        return "response"

    def close(self):
        self.closed = True


def test_pulls_ask_for_more_messages_and_everything_else_passes_through():
    fake = FakeSubscriber()
    client = _BiggerPulls(fake, 100)
    assert client.pull(subscription="s", max_messages=10, return_immediately=True) == "response"
    assert fake.pulls == [{"subscription": "s", "max_messages": 100, "return_immediately": True}]
    client.close()
    assert fake.closed


def test_the_direct_runners_reader_is_patched_once():
    assert use_bigger_pulls()
    assert use_bigger_pulls()  # idempotent
    evaluator = transform_evaluator._PubSubReadEvaluator
    assert evaluator._bigger_pulls
    assert PULL_MAX_MESSAGES >= 100
