"""The Linen adapter: any ``flax.linen`` module with its variables (``adapter``), masked by method interception
(``interceptors``), and the helpers only Linen users need."""

import flax.linen as nn

from gtap_jax.network.contract import Adapter
from gtap_jax.network.linen.adapter import LinenNetwork, TrainedLinenNetwork, TrainedModule, variables_like
from gtap_jax.network.linen.interceptors import masked_apply, masked_variables

ADAPTER = Adapter(nn.Module, LinenNetwork, variables_like)
TRAINED_ADAPTER = Adapter(TrainedModule, TrainedLinenNetwork, variables_like)

__all__ = ["ADAPTER", "TRAINED_ADAPTER", "LinenNetwork", "TrainedLinenNetwork", "TrainedModule", "masked_apply",
           "masked_variables"]
