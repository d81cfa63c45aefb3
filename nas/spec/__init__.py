"""The YAML spec of a search: `schema` (dataclass <-> YAML, one-line errors), `sections` (the spec and
`load_spec()` with `--set` overrides), `imports` (the user's modules), `resolve` (its data and space, loaded)."""
