"""Operations on Google Cloud for the Flex Templates: `ops/flex COMMAND` (ops/flex help).

ops/flex is a thin shell entry that runs `python -m ops`; ops.cli parses and checks the
command line, ops.commands.* plan and run each command through one ops.gcloud.Gcloud runner,
and the templates, their streaming flag and the lab's parameter values come from pipelines
(ops.lab).
"""
