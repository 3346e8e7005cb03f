"""What a run costs: its models' tokens and its container's time, by the operator's price table.

A self-hosted gateway's "credits" are money the team spends on model APIs and on the
machines that run containers.  The operator sets the prices (``OZGW_PRICES``, JSON); the
defaults are list prices per million tokens of the models the three agent CLIs use most,
and a container-minute price near a small cloud VM's.  A model the table does not name is
priced by the CLI's own figure when it reports one (Claude Code does), else at the table's
``default`` rate, so an unknown model is never free.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from core.models import ModelUsage

MILLION = 1_000_000


class ModelPrice(BaseModel):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    """Cached prompt tokens; ``None``: a tenth of ``input`` (the providers' usual discount)."""

    def cost(self, usage: ModelUsage) -> float:
        cached = self.cached_input if self.cached_input is not None else self.input / 10
        fresh = max(usage.input_tokens - usage.cached_input_tokens, 0)
        return (fresh * self.input + usage.cached_input_tokens * cached + usage.output_tokens * self.output) / MILLION


DEFAULT_MODELS: dict[str, ModelPrice] = {
    "claude-opus": ModelPrice(input=15.0, output=75.0, cached_input=1.5),
    "claude-sonnet": ModelPrice(input=3.0, output=15.0, cached_input=0.3),
    "claude-haiku": ModelPrice(input=1.0, output=5.0, cached_input=0.1),
    "gpt-5-mini": ModelPrice(input=0.25, output=2.0, cached_input=0.025),
    "gpt-5": ModelPrice(input=1.25, output=10.0, cached_input=0.125),
    "o4-mini": ModelPrice(input=1.1, output=4.4, cached_input=0.275),
    "gemini-2.5-pro": ModelPrice(input=1.25, output=10.0, cached_input=0.31),
    "gemini-2.5-flash": ModelPrice(input=0.3, output=2.5, cached_input=0.075),
    # Each family's newer models, until the operator names them: its mid-range price.
    "claude": ModelPrice(input=3.0, output=15.0, cached_input=0.3),
    "gpt": ModelPrice(input=1.25, output=10.0, cached_input=0.125),
    "gemini": ModelPrice(input=1.25, output=10.0, cached_input=0.31),
}


class PriceTable(BaseModel):
    """``models``: by model id prefix, the longest matching prefix wins (``claude-sonnet``
    prices ``claude-sonnet-4-5-20250929``)."""

    models: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_MODELS))
    default: ModelPrice = ModelPrice(input=3.0, output=15.0)
    container_minute: float = Field(default=0.002, ge=0)
    """USD per minute a run's container exists (claimed to finished)."""

    def price_for(self, model: str) -> ModelPrice | None:
        model = model.lower()
        matches = [prefix for prefix in self.models if model.startswith(prefix.lower())]
        return self.models[max(matches, key=len)] if matches else None

    def model_cost(self, usage: ModelUsage) -> float:
        price = self.price_for(usage.model)
        if price is None and usage.cost_usd is not None:
            return usage.cost_usd
        return (price or self.default).cost(usage)

    def priced(self, usage: list[ModelUsage]) -> list[ModelUsage]:
        """The usage with each model's ``priced_usd`` set from its (summed) tokens."""
        return [u.model_copy(update={"priced_usd": round(self.model_cost(u), 6)}) for u in usage]

    def cost(self, usage: list[ModelUsage], container_seconds: float) -> Cost:
        inference = sum(self.model_cost(u) for u in usage)
        return Cost(round(inference, 6), round(container_seconds / 60 * self.container_minute, 6))


@dataclass(frozen=True)
class Cost:
    inference_usd: float
    compute_usd: float


def dollars(amount: float) -> str:
    """``$0.42``; amounts under a cent show as ``<$0.01`` rather than a misleading ``$0.00``."""
    if 0 < amount < 0.01:
        return "<$0.01"
    return f"${amount:,.2f}"
