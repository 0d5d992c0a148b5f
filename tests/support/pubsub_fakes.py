"""Fake Pub/Sub clients for the local runtime's unit tests: what the runtime calls of a
subscriber or publisher client, recorded."""

from types import SimpleNamespace


def received(*ids):
    return [
        SimpleNamespace(
            ack_id=f"ack-{i}", message=SimpleNamespace(message_id=i, data=b"x", attributes={})
        )
        for i in ids
    ]


class FakeSubscriber:
    def __init__(self, messages=()):
        self.messages = list(messages)
        self.pulls, self.acks, self.deadlines = [], [], []
        self.closed = False

    def pull(self, **kwargs):
        self.pulls.append(kwargs)
        response, self.messages = self.messages, []
        return SimpleNamespace(received_messages=response)

    # Like the library's clients: a request, or its fields as keywords.
    def acknowledge(self, request=None, *, subscription=None, ack_ids=None, timeout=None):
        self.acks += list(request.ack_ids if request is not None else ack_ids)

    def modify_ack_deadline(
        self,
        request=None,
        *,
        subscription=None,
        ack_ids=None,
        ack_deadline_seconds=None,
        timeout=None,
    ):
        if request is not None:
            ack_ids, ack_deadline_seconds = request.ack_ids, request.ack_deadline_seconds
        self.deadlines += [(a, ack_deadline_seconds) for a in ack_ids]

    def close(self):
        self.closed = True


class FakePublisher:
    def __init__(self, fail_with=None):
        self.requests = []
        self.fail_with = fail_with
        self.api = self

    def publish(self, request, timeout):
        if self.fail_with:
            raise self.fail_with
        self.requests.append(
            (request.topic, [(m.data, dict(m.attributes)) for m in request.messages])
        )


class PagedSubscriber(FakeSubscriber):
    """Returns at most `page` messages a pull, as the emulator returns at most 100."""

    def __init__(self, messages, page):
        super().__init__(messages)
        self.page = page

    def pull(self, **kwargs):
        self.pulls.append(kwargs)
        count = min(self.page, kwargs["max_messages"])
        response, self.messages = self.messages[:count], self.messages[count:]
        return SimpleNamespace(received_messages=response)


def sized(count, size, first=0):
    return [
        SimpleNamespace(
            ack_id=f"ack-{i}",
            message=SimpleNamespace(message_id=str(i), data=b"x" * size, attributes={}),
        )
        for i in range(first, first + count)
    ]


class FailingSubscriber(FakeSubscriber):
    def __init__(self, errors, messages=()):
        super().__init__(messages)
        self.errors = list(errors)

    def pull(self, **kwargs):
        if self.errors:
            self.pulls.append(kwargs)
            raise self.errors.pop(0)
        return super().pull(**kwargs)
