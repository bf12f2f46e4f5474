"""Neural-network building blocks: Module, Parameter, layers, activations, losses, init."""

from .module import IncompatibleKeys, Module
from .parameter import Parameter
