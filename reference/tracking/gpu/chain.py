"""The whole tracking chain with its GPU stages: clusterization, spacepoint formation, seeding,
parameter estimation and the CKF on the device, the greedy ambiguity resolution on the host.

Products come back to the host once, after the CKF (timed as ``to_host``; on a GPU into pinned
host memory, asynchronously on the current stream), so that the result is the same
:class:`~reference.tracking.chain.ChainResult` the CPU chain gives and the physics performance is
computed the same way. Stage times are wall times with the device synchronised at
each stage boundary.
"""

from __future__ import annotations

from auditor.products import to_host, to_host_pinned
from reference.tracking.ambiguity import resolve_ambiguities
from reference.tracking.chain import ChainConfig, ChainResult, _Clock
from reference.tracking.errors import TrackingInputError
from reference.tracking.event import Event
from reference.tracking.geometry import Detector
from reference.tracking.gpu import backend


class _DeviceClock(_Clock):
    """A stage clock that waits for the device before reading the time."""

    def stop(self, name: str) -> None:
        backend.synchronize()
        super().stop(name)


def _device_stages(event: Event, detector: Detector | None, config: ChainConfig, clock: _Clock) -> dict:
    from reference.tracking.gpu.ckf import tracks_from_seeds
    from reference.tracking.gpu.clusterization import clusterization_gpu, event_to_device
    from reference.tracking.gpu.estimation import estimate_track_parameters
    from reference.tracking.gpu.seeding import find_seeds
    from reference.tracking.gpu.spacepoints import form_spacepoints_gpu

    device_event = event_to_device(event)
    clock.stop("to_device")
    out = {"measurements": clusterization_gpu(device_event, detector)}
    clock.stop("clusterization")
    out["spacepoints"] = form_spacepoints_gpu(out["measurements"])
    clock.stop("spacepoints")
    out["seeds"] = find_seeds(out["spacepoints"], config.seeding)
    clock.stop("seeding")
    out["parameters"], out["seed_valid"] = estimate_track_parameters(out["seeds"], out["spacepoints"],
                                                                     out["measurements"], config.estimation)
    clock.stop("estimation")
    out["tracks_all"] = tracks_from_seeds(out["seeds"], out["spacepoints"], out["measurements"],
                                          (out["parameters"], out["seed_valid"]), config.ckf)
    clock.stop("ckf")
    return out


def reconstruct_event_gpu(event: Event, detector: Detector | None = None,
                          config: ChainConfig = ChainConfig()) -> ChainResult:
    """Run the chain on the device (see the module docstring) and return host products."""
    if config.low_pt is not None or config.leftover is not None:
        raise TrackingInputError("The low-pT and leftover iterations run on the CPU only; drop --low-pt or use "
                                 "--device cpu.")
    timings: dict = {}
    cpu: dict = {}
    clock = _DeviceClock(timings, cpu)
    on_device = _device_stages(event, detector, config, clock)
    host = to_host(on_device) if backend.simulated() else to_host_pinned(on_device)
    clock.stop("to_host")
    tracks = resolve_ambiguities(host["tracks_all"], len(host["measurements"]), config.ambiguity)
    clock.stop("ambiguity")
    timings["total"] = sum(timings.values())
    cpu["total"] = sum(cpu.values())
    info = dict(event.info)
    info.update({"measurements": len(host["measurements"]), "spacepoints": len(host["spacepoints"]),
                 "seeds": len(host["seeds"]), "ckf_window_overflow": host["tracks_all"].stats.get("window_overflow", 0),
                 "tracks_before_ambiguity": len(host["tracks_all"]), "tracks": len(tracks), "device": "gpu"})
    used_cells = event.cells is not None and detector is not None
    return ChainResult(host["measurements"], host["spacepoints"], host["seeds"], host["parameters"],
                       host["seed_valid"], host["tracks_all"], tracks, timings, info, used_cells, cpu)
