"""`python -m gpugrad`: the demo (`gpugrad train` comes with the training stack)."""

from .demo import main

if __name__ == "__main__":
    main()
