"""The built-in models' adapter: staged models with mask sites (``model``), their network (``adapter``) and their
exact slicing into smaller networks (``slicing``)."""

from gtap_jax.network.contract import Adapter
from gtap_jax.network.staged.adapter import StagedNetwork
from gtap_jax.network.staged.model import SiteSpec, StagedModel, apply_site, layout_for


def _network(model: StagedModel, variables, apply_kwargs) -> StagedNetwork:
    if apply_kwargs:
        raise ValueError("the built-in models take no apply_kwargs")
    return StagedNetwork(model, variables)


ADAPTER = Adapter(StagedModel, _network)

__all__ = ["ADAPTER", "SiteSpec", "StagedModel", "StagedNetwork", "apply_site", "layout_for"]
