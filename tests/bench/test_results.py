"""bench/results.py: a report lands at the end of RESULTS.md under a dated heading, the earlier text kept."""
import re

from bench_helpers import load_bench


def test_append_results_keeps_what_is_there(tmp_path, monkeypatch):
    mod = load_bench("results")
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nearlier run\n")
    monkeypatch.setattr(mod, "RESULTS", str(path))
    mod.append_results("Supernet mixing", "bench/supernet_mixing.py --quick", "| a | b |")
    text = path.read_text()
    assert text.startswith("# Results\n\nearlier run\n")
    assert re.search(r"\n## Supernet mixing — \d{4}-\d\d-\d\d \d\d:\d\d \(`bench/supernet_mixing.py --quick`\)\n\n"
                     r"\| a \| b \|\n$", text)
