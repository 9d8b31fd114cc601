"""The NNX adapter: any ``flax.nnx`` module (``adapter``), masked by graph surgery on a clone (``surgery``), and the
helpers only NNX users need."""

from flax import nnx

from gtap_jax.network.contract import Adapter
from gtap_jax.network.nnx.adapter import NNXNetwork, masked_clone, masked_model, unmasked
from gtap_jax.network.nnx.surgery import Mask


def _network(model: nnx.Module, variables, apply_kwargs) -> NNXNetwork:
    if variables is not None:
        raise ValueError("an NNX model carries its own state: pass variables=None")
    return NNXNetwork(model, apply_kwargs)


ADAPTER = Adapter(nnx.Module, _network)

__all__ = ["ADAPTER", "Mask", "NNXNetwork", "masked_clone", "masked_model", "unmasked"]
