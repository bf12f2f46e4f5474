"""gg.Generator: a random stream of one's own, apart from the global one `gg.manual_seed` resets.

```python
g = gg.Generator().manual_seed(2147483647)      # as in makemore
x = gg.randn(3, 4, generator=g)                  # draws from g, not from the global stream
state = g.get_state(); ...; g.set_state(state)   # replay the same draws
```
"""

from __future__ import annotations

import secrets
from typing import Any

from . import _args
from .backend import Device, get_backend
from .backend import device as parse_device
from .backend.base import Backend
from .errors import ArgumentTypeError, CheckpointError, DeviceError

# PyTorch's default seed, so a Generator that is never seeded draws the same numbers in every
# run (as torch.Generator() does) without taking anything from the global stream.
DEFAULT_SEED = 67280421310721


class Generator:
    """A random number generator for one device, used through `generator=` on the random
    functions (rand, randn, randint, randperm, multinomial, bernoulli, normal, F.dropout) and
    on DataLoader and random_split."""

    def __init__(self, device: str | Device | None = "cpu") -> None:
        self.device = parse_device(device)
        self._backend: Backend = get_backend(self.device)  # fails now on an unusable device
        self.manual_seed(DEFAULT_SEED)

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from `seed` (an integer in [0, 2**64)); returns the generator,
        so `gg.Generator().manual_seed(42)` reads as in PyTorch."""
        seed = _args.seed("Generator.manual_seed", seed)
        self._rng = self._backend.make_rng(seed)
        self._initial_seed = seed
        return self

    def seed(self) -> int:
        """Restart the stream from a fresh, nondeterministic seed, and return that seed."""
        seed = secrets.randbits(63)
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> int:
        """The seed the stream was last started from."""
        return self._initial_seed

    def get_state(self) -> dict[str, Any]:
        """Where the stream is now, as a dict of plain values (and, for cuda, a NumPy uint8
        array of the cuRAND states) that `gg.save` can store and `set_state` restores:
        {"device": "cpu", "initial_seed": int, "rng": <the backend generator's state>}."""
        return {
            "device": str(self.device),
            "initial_seed": self._initial_seed,
            "rng": self._backend.rng_state(self._rng),
        }

    def set_state(self, state: dict[str, Any]) -> Generator:
        """Continue from a state `get_state` returned (on a generator of the same device type)."""
        if not isinstance(state, dict) or not {"device", "initial_seed", "rng"} <= set(state):
            raise ArgumentTypeError(
                f"Generator.set_state takes a dict from Generator.get_state, got {state!r:.80}"
            )
        saved = parse_device(state["device"])
        if saved.type != self.device.type:
            raise DeviceError(
                f"a state of a '{saved}' generator cannot be set on a '{self.device}' generator"
            )
        try:
            self._backend.set_rng_state(state["rng"], self._rng)
        except (TypeError, ValueError, KeyError) as err:
            raise CheckpointError(f"not a valid '{self.device}' generator state: {err}") from None
        self._initial_seed = int(state["initial_seed"])
        return self

    def __repr__(self) -> str:
        return f"Generator(device='{self.device}', initial_seed={self._initial_seed})"


def generator_rng(generator: Generator | None, backend: Backend, where: str) -> Any:
    """The backend generator a draw on `backend` should use: the generator's own stream, or
    None (the backend's global stream) when no generator is given."""
    if generator is None:
        return None
    if not isinstance(generator, Generator):
        raise ArgumentTypeError(
            f"{where}: generator must be a gg.Generator, got {type(generator).__name__}"
        )
    if generator.device != backend.device:
        raise DeviceError(
            f"{where} draws on device '{backend.device}' but was given a generator for "
            f"'{generator.device}'; make it with gg.Generator(device='{backend.device}')"
        )
    return generator._rng
