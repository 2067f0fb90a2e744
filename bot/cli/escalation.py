"""``python -m bot escalation ...``: train the model that decides when the bot hands over to a person."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.output import fail, print_json
from bot.escalation.dialogues import DatasetError

escalation_app = typer.Typer(help="The model that decides when the bot hands over to a person", no_args_is_help=True)


@escalation_app.command("train")
def escalation_train(
    data: Annotated[Path | None, typer.Option(help="folder with train-*.jsonl and dev.jsonl (default: "
                                                   "data/escalation)")] = None,
    out: Annotated[Path | None, typer.Option(help="where the model goes (default: the one the bot uses, "
                                                  "bot/escalation/escalation_model.json)")] = None,
    c: Annotated[float, typer.Option(min=1e-4, help="inverse regularisation of the logistic regression")] = 0.5,
) -> None:
    """Fit the escalation model on the train dialogues and calibrate it on the dev dialogues (JSON report)."""
    from bot.escalation.training import train  # NumPy

    try:
        _, report = train(data, out, c)
    except (DatasetError, ValueError) as exc:
        fail(str(exc), 2)
    print_json(report)
