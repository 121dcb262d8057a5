"""The tracking chain registers with the auditor through the public entry point and runs."""

from __future__ import annotations

from auditor.placement_report import placement_for_chain
from auditor.profiler import ProfileOptions
from auditor.registry import available_chains
from auditor.run import run_chains


def test_tracking_chain_is_registered_and_measured() -> None:
    factory = available_chains()["tracking"]
    chain = factory()
    assert list(chain.stages) == ["clusterization", "spacepoints", "seeding", "estimation", "ckf", "ambiguity"]
    options = ProfileOptions(devices=("cpu",), mode="quick", parameters={"pileup": 5, "events": 1})
    report = run_chains([chain], options, placement=lambda c, r: placement_for_chain(c, r, 0.99))
    result = report["chains"][0]
    assert [s["status"] for s in result["stages"]] == ["measured"] * 6
    for stage in result["stages"]:
        cpu = stage["devices"]["cpu"]
        assert cpu["time"]["value"] > 0
        assert cpu["quality"]["status"] == "analysed"
        assert all(f["qualified_name"].startswith("reference.tracking") for f in cpu["quality"]["functions"])
    ckf = next(s for s in result["stages"] if s["name"] == "ckf")["devices"]["cpu"]["quality"]
    assert any(f["qualified_name"].endswith("find_tracks") for f in ckf["functions"])  # followed into the package
    assert result["product_bytes"]["measurements"] > 0
    assert result["placement"]["results"]["latency"]["placement"] == dict.fromkeys(chain.stages, "cpu")
