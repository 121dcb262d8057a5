import json

import typer
from typer.testing import CliRunner

from reference.tracking.cli import register

runner = CliRunner()


def _app():
    app = typer.Typer()
    register(app)
    return app


def test_simulate_and_reconstruct(tmp_path):
    app = _app()
    r = runner.invoke(app, ["simulate", "--pileup", "3", "--events", "2", "--seed", "5", "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ev" / "event000000002-cells.csv").is_file()
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "ev"), "--out", str(tmp_path / "out"), "--low-pt", "--plots"])
    assert r.exit_code == 0, r.output
    assert "TrackML score" in r.output
    sub = (tmp_path / "out" / "event000000001-submission.csv").read_text().splitlines()
    assert sub[0] == "hit_id,track_id"
    perf = json.loads((tmp_path / "out" / "event000000001-performance.json").read_text())
    assert "trackml_score" in perf["performance"]
    assert (tmp_path / "out" / "event000000001-efficiency.png").is_file()
    assert (tmp_path / "out" / "performance.json").is_file()


def test_bad_directory_and_device(tmp_path):
    app = _app()
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert "not found" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["reconstruct", str(tmp_path), "--out", str(tmp_path / "o"), "--device", "tpu"])
    assert r.exit_code == 1 and "Unknown device" in r.output and "--device cpu" in r.output


def test_bad_events_are_counted_skips(tmp_path):
    app = _app()
    d = tmp_path / "ev"
    assert runner.invoke(app, ["simulate", "--pileup", "2", "--events", "1", "--out", str(d)]).exit_code == 0
    # an empty event and an event whose cells sit on unknown modules
    (d / "event000000002-hits.csv").write_text("hit_id,x,y,z,volume_id,layer_id,module_id\n")
    hits = (d / "event000000001-hits.csv").read_text().splitlines()
    cells = (d / "event000000001-cells.csv").read_text().splitlines()
    bad = [hits[0]] + [",".join(line.split(",")[:6] + ["999999"]) for line in hits[1:]]
    (d / "event000000003-hits.csv").write_text("\n".join(bad) + "\n")
    (d / "event000000003-cells.csv").write_text("\n".join(cells) + "\n")
    r = runner.invoke(app, ["reconstruct", str(d), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "event000000002" in r.output and "event000000003" in r.output
    assert "reconstructed 1 of 3" in r.output
    assert "Traceback" not in r.output


def test_reconstruct_on_a_gpu_that_is_not_there_says_so(tmp_path, monkeypatch):
    """Without CuPy (or a device) ``--device gpu`` stops with one sentence, not a traceback."""
    import importlib.util

    from reference.tracking.gpu import backend

    if importlib.util.find_spec("cupy") is not None:
        import pytest

        pytest.skip("CuPy is installed here; the refusal is for machines without it")
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")
    backend.xp.cache_clear()
    try:
        r = runner.invoke(_app(), ["reconstruct", str(tmp_path), "--out", str(tmp_path / "o"), "--device", "gpu"])
    finally:
        backend.xp.cache_clear()
    assert r.exit_code == 1
    assert "CuPy" in r.output and "Traceback" not in r.output
