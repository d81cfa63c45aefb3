"""Ray trials on a two-node cluster (ray.cluster_utils.Cluster on this machine: a head without CPUs for trials and a
worker node) whose worker processes cannot read the driver's run folder, as a node of a real cluster cannot: the
supernet reaches the trials through Ray's object store, and the search completes."""
import os
import sys

import pytest

from tiny_space import tiny_spec_in
from nas.search.runner import SearchRun
from nas.spec.sections import load_spec


def forbid(folder: str):
    """A Ray worker-process setup hook: opening or listing a path in `folder` raises PermissionError (RUN/ray, Tune's
    storage_path, which a cluster must share or put in the cloud, aside)."""
    allowed = os.path.join(folder, "ray")

    def hook():
        import os
        import sys

        def audit(event, args):
            if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
                path = os.path.abspath(os.fsdecode(args[0]))
                inside = path == folder or path.startswith(folder + os.sep)
                if inside and not (path == allowed or path.startswith(allowed + os.sep)):
                    raise PermissionError(f"a Ray worker read {path} in the driver's run folder")

        sys.addaudithook(audit)

    return hook


@pytest.mark.slow
def test_ray_trials_on_nodes_that_cannot_read_the_run_folder(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    spec = tiny_spec_in(tmp_path)
    spec["supernet"]["epochs"] = 1
    spec["search"].update({"trials": 3, "population": 2, "executor": "ray", "ray": {"max_concurrent": 1}})
    spec["tracking"]["wandb"]["enabled"] = False
    run_dir = os.path.abspath(spec["run_dir"])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=1)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hook travels by value
    ray.init(address=cluster.address, runtime_env={"worker_process_setup_hook": forbid(run_dir)},
             log_to_driver=False, configure_logging=False)
    try:
        @ray.remote(num_cpus=1)
        def read(path):
            with open(path):
                pass

        with pytest.raises(ray.exceptions.RayTaskError, match="PermissionError: a Ray worker read"):  # the guard
            ray.get(read.remote(os.path.join(run_dir, "supernet", "checkpoint.pt")))
        summary = SearchRun(load_spec(spec)).run()
        assert summary["trials"] == summary["complete"] == 3
        assert summary["front"] and os.path.isfile(os.path.join(run_dir, "best", "model.py"))
    finally:
        ray.shutdown()
        cluster.shutdown()
