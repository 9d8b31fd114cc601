"""What any Flax module's adapter shares, importing neither Linen nor NNX: masks at named modules (``masking``),
coupled groups from a traced pass (``coupling``), incremental evaluation of chains and stars (``incremental``),
smaller networks of chains (``shrink_chain``) and of coupled groups and heads (``shrink_groups``), and the common
base of the module adapters (``base``)."""
