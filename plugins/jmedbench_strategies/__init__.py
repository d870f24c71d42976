"""First-party training strategies."""

from jmedbench.hookspecs import hookimpl
from jmedbench.specs import StrategySpec
from jmedbench.strategy import Strategy


def make_baseline() -> Strategy:
    return Strategy()


@hookimpl
def jmedbench_strategies():
    return [
        StrategySpec("baseline", make_baseline,
                     "Supervised training only: Adam lr 3e-4, batch 4, Dice + weighted CE",
                     citation="Kingma & Ba, Adam, ICLR 2015"),
    ]
