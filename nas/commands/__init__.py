"""Sub-commands of the `nas` CLI, one module each."""
