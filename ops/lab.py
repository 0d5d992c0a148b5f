"""The templates as ops sees them, and the course lab's names, all from `pipelines`.

The template list is pipelines.registry; whether one streams is its TEMPLATE.streaming; the
lab's parameter values are its parameters' `lab` templates, formatted with the settings'
project, bucket, dataset and tables. The topics and subscriptions that setup creates are
the ones the stream templates' lab values name: nothing here repeats them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOPIC = re.compile(r"projects/\{project\}/topics/([^/{}]+)")
_SUBSCRIPTION = re.compile(r"projects/\{project\}/subscriptions/([^/{}]+)")
# The lab's convention: topic T is read through its subscription "T-sub".
SUBSCRIPTION_SUFFIX = "-sub"


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    streaming: bool
    parameters: tuple[str, ...]  # declared names, in order
    lab: dict[str, str] = field(default_factory=dict)  # name -> lab template
    # name -> pipelines.core.params.Parameter: what the launch checks each value with.
    declared: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def job_base(self) -> str:
        """The job name run gives it (plus a timestamp for batch jobs)."""
        return self.name.replace("_", "-")

    def lab_values(self, names: dict[str, str]) -> dict[str, str]:
        return {key: value.format(**names) for key, value in self.lab.items()}

    def subscriptions_read(self) -> list[str]:
        """The subscriptions the lab's job reads (their short names)."""
        return [m.group(1) for v in self.lab.values() if (m := _SUBSCRIPTION.fullmatch(v))]

    def topics_written(self) -> list[str]:
        return [m.group(1) for v in self.lab.values() if (m := _TOPIC.fullmatch(v))]

    def input_topic(self) -> str | None:
        subs = self.subscriptions_read()
        return subs[0].removesuffix(SUBSCRIPTION_SUFFIX) if subs else None

    def dead_letter_topic(self) -> str | None:
        value = self.lab.get("dead_letter")
        match = _TOPIC.fullmatch(value) if value else None
        return match.group(1) if match else None


@dataclass(frozen=True)
class Catalog:
    templates: dict[str, TemplateInfo]

    @classmethod
    def from_registry(cls) -> Catalog:
        from pipelines.registry import TEMPLATES, job_module

        found = {}
        for name in TEMPLATES:
            template = job_module(name).TEMPLATE
            found[name] = TemplateInfo(
                name=name,
                streaming=template.streaming,
                parameters=tuple(p.name for p in template.parameters),
                lab={p.name: p.lab for p in template.parameters if p.lab is not None},
                declared={p.name: p for p in template.parameters},
            )
        return cls(found)

    @property
    def names(self) -> list[str]:
        return list(self.templates)

    @property
    def streaming(self) -> list[str]:
        return [n for n, t in self.templates.items() if t.streaming]

    def __getitem__(self, name: str) -> TemplateInfo:
        return self.templates[name]

    def __contains__(self, name: str) -> bool:
        return name in self.templates

    def topics(self) -> list[str]:
        """Every topic the stream templates' lab values name, input topics first per
        template, each once."""
        found: list[str] = []
        for template in self.templates.values():
            if not template.streaming:
                continue
            for topic in [
                *(s.removesuffix(SUBSCRIPTION_SUFFIX) for s in template.subscriptions_read()),
                *template.topics_written(),
            ]:
                if topic not in found:
                    found.append(topic)
        return found

    def subscriptions_read(self) -> list[str]:
        return [s for t in self.templates.values() for s in t.subscriptions_read()]

    def topics_written(self) -> list[str]:
        return [s for t in self.templates.values() if t.streaming for s in t.topics_written()]
