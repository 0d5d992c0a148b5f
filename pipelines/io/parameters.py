"""The Pub/Sub parameters both stream templates take: where the input arrives (a
subscription, a topic, or either), where outputs and dead letters go. Their checks and the
lookups at launch are in pipelines/io/pubsub.py."""

from __future__ import annotations

from pipelines.core.grammar import PUBSUB_SUBSCRIPTION, PUBSUB_TOPIC, PUBSUB_TOPIC_OR_SUBSCRIPTION
from pipelines.core.params import Parameter

# The console shows a typed picker for each; `input` (either kind) keeps the commands users
# already have working. Exactly one is given (resolve_input).
INPUT_NAMES = ("input_subscription", "input_topic", "input")


def input_source_parameters(what: str, example: str, message_format: str) -> tuple[Parameter, ...]:
    """The stream's input parameters: a subscription picker, a topic picker and `input`.
    The example topic is the lab's; the lab reads its subscription `<topic>-sub`."""
    subscription = f"projects/PROJECT/subscriptions/{example}-sub"
    topic = f"projects/PROJECT/topics/{example}"
    return (
        Parameter(
            name="input_subscription",
            label="Input subscription (recommended)",
            help_text=(
                f"The subscription the {what} arrive on, e.g. {subscription}: nothing "
                f"is lost across restarts and updates. Give this or input_topic. "
                f"{message_format}"
            ),
            param_type="PUBSUB_SUBSCRIPTION",
            optional=True,
            kind=PUBSUB_SUBSCRIPTION,
            lab=f"projects/{{project}}/subscriptions/{example}-sub",
        ),
        Parameter(
            name="input_topic",
            label="Input topic",
            help_text=(
                f"Instead of input_subscription, the topic itself, e.g. {topic}: Dataflow "
                f"then makes a subscription of its own (which needs roles/pubsub.editor), "
                f"so {what} published while the job is not running are lost."
            ),
            param_type="PUBSUB_TOPIC",
            optional=True,
            kind=PUBSUB_TOPIC,
        ),
        Parameter(
            name="input",
            label="Input topic or subscription (either)",
            help_text=(
                f"A topic or a subscription, as the lab's commands give it, e.g. "
                f"{subscription}. Give it instead of input_subscription or input_topic, "
                f"not with them."
            ),
            param_type="TEXT",
            optional=True,
            kind=PUBSUB_TOPIC_OR_SUBSCRIPTION,
        ),
    )


def output_topic_parameter(label: str, help_text: str, lab: str | None = None) -> Parameter:
    return Parameter(
        name="output",
        label=label,
        help_text=help_text,
        param_type="PUBSUB_TOPIC",
        kind=PUBSUB_TOPIC,
        lab=lab,
    )


def dead_letter_topic_parameter(example_topic: str) -> Parameter:
    return Parameter(
        name="dead_letter",
        label="Dead-letter topic",
        help_text=(
            f"Optional topic for messages that cannot be processed, e.g. "
            f"projects/PROJECT/topics/{example_topic}; it must differ from the input's "
            f"topic. Each is published with the attributes error (why) and "
            f"error_stage, and the original data and attributes (unchanged, or in a "
            f"JSON envelope marked error_envelope=json when they would not fit). "
            f"Without it, such messages are counted and logged, and never stop the "
            f"job."
        ),
        param_type="PUBSUB_TOPIC",
        optional=True,
        kind=PUBSUB_TOPIC,
        lab=f"projects/{{project}}/topics/{example_topic}",
    )
