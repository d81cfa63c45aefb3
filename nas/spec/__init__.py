"""The YAML spec of a search: validated sections, `load_spec()` with `--set` overrides."""
from nas.spec.schema import SpecError, from_dict, to_dict
from nas.spec.sections import Spec, load_spec

__all__ = ["Spec", "SpecError", "from_dict", "load_spec", "to_dict"]
