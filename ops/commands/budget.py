"""budget: a monthly budget alert on the project's billing account."""

from __future__ import annotations

from ops import answers
from ops.commands import PROG, Context
from ops.gcloud import SLOW, Stop, say


def budget_name(ctx: Context) -> str:
    return f"Dataflow lab {ctx.settings.project}"


def budget(ctx: Context, amount: str) -> int:
    s, g = ctx.settings, ctx.gcloud
    name = budget_name(ctx)
    account = g.read(
        ["gcloud", "billing", "projects", "describe", s.project],
        {"billingAccountName": "billingAccounts/BILLING_ACCOUNT_ID"},
        answers.billing_account,
    )
    if not account:
        raise Stop(f"project {s.project} has no billing account: nothing to budget")
    g.run(
        ["gcloud", "services", "enable", "billingbudgets.googleapis.com", *ctx.project], wait=SLOW
    )
    existing = g.read(
        [
            "gcloud",
            "billing",
            "budgets",
            "list",
            f"--billing-account={account}",
            f'--filter=displayName="{name}"',
        ],
        [],
        lambda answer: answers.named_list(answer, "budgets"),
    )
    if existing:
        found = existing[0]
        say(
            f"budget '{name}' exists ({found}); to change it: gcloud billing budgets update "
            f"{found.rsplit('/', 1)[-1]} --billing-account={account} --budget-amount={amount}"
        )
        return 0
    # https://cloud.google.com/billing/docs/how-to/budget-api-access-control: the Billing
    # Account Costs Manager (or Administrator) role on the account; for a budget scoped to
    # one project, the project's Owner may create it too.
    say(
        f"creating a budget needs the Billing Account Costs Manager role on billing account "
        f"{account}, or the Owner role on project {s.project} (a budget of this project only)"
    )
    g.run(
        [
            "gcloud",
            "billing",
            "budgets",
            "create",
            f"--billing-account={account}",
            f"--display-name={name}",
            f"--budget-amount={amount}",
            "--calendar-period=month",
            f"--filter-projects=projects/{s.project}",
            "--threshold-rule=percent=0.5",
            "--threshold-rule=percent=0.9",
            "--threshold-rule=percent=1.0",
        ]
    )
    say(
        f"the billing account's administrators get an e-mail at 50, 90 and 100 % of {amount} "
        "a month."
    )
    say(f"a budget only alerts, it stops nothing: see {PROG} jobs, and drain what you do not need")
    return 0
