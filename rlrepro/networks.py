"""Policy networks from params: layer sizes and an activation name mapped to torch modules."""

import itertools

from torch import nn

ACTIVATION_MODULES: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}


def activation(name: str) -> type[nn.Module]:
    """The torch module class for activation `name`; :raises KeyError: naming the accepted ones."""
    if name not in ACTIVATION_MODULES:
        raise KeyError(f"unknown activation {name!r}; accepted: {', '.join(ACTIVATION_MODULES)}")
    return ACTIVATION_MODULES[name]


def mlp(sizes: tuple[int, ...], activation_name: str) -> nn.Sequential:
    """Linear layers between consecutive `sizes`, each followed by the activation."""
    act = activation(activation_name)
    layers: list[nn.Module] = []
    for size_in, size_out in itertools.pairwise(sizes):
        layers += [nn.Linear(size_in, size_out), act()]
    return nn.Sequential(*layers)
