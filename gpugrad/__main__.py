"""`python -m gpugrad`: runs the demo (the `gpugrad train` command comes with the training stack)."""

from .demo import main

if __name__ == "__main__":
    main()
