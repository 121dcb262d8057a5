"""The stages API: chains of stages with one implementation per device.

A :class:`Chain` is an ordered set of :class:`Stage` objects. Each stage names the data products it
reads and writes, and has one implementation per device (``"cpu"``, ``"gpu"``) plus, optionally, a
comparator of device outputs. Implementations are ordinary functions; registering one returns it
unchanged, so decorating code does not change how it runs::

    from auditor import Chain

    chain = Chain("demo", description="Sort and select", inputs=make_events)

    @chain.stage("sort", inputs=["values"], outputs=["sorted"])
    def sort_cpu(values):
        return np.sort(values)

    @chain.stage("sort", device="gpu", backend="cupy")
    def sort_gpu(values):
        return cupy.sort(values)

    @chain.comparator("sort")
    def same_order(cpu, gpu):
        return Agreement.from_rates({"values": float(np.mean(cpu["sorted"] == gpu["sorted"]))})

An implementation is called with its inputs as keyword arguments named after the products and
returns its output (one declared output) or a tuple/dict of outputs (several). ``inputs`` of the
chain is a callable ``inputs(parameters) -> iterable of events``, each event a dict of host
(numpy) products; ``parameters`` holds the run options (``events``, ``seed``, ``quick`` and the
chain's own parameters such as ``pileup``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from auditor.errors import UserError

DEVICES = ("cpu", "gpu")
BACKENDS = {"cpu": ("numpy",), "gpu": ("cupy", "torch", "numba")}


@dataclass(frozen=True)
class Agreement:
    """How well one device's outputs match the reference device's.

    ``rates`` maps a label (a tolerance such as ``"1%"``, or a field name) to the matched
    fraction in [0, 1]; ``headline`` is the label used to accept or exclude an implementation.
    """

    rates: Mapping[str, float]
    headline: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_rates(cls, rates: Mapping[str, float], headline: str | None = None, **details: Any) -> "Agreement":
        for label, rate in rates.items():
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"agreement rate {label!r} = {rate} is not in [0, 1]")
        return cls({k: float(v) for k, v in rates.items()}, headline or (next(iter(rates)) if rates else None),
                   dict(details))

    @property
    def rate(self) -> float | None:
        """The headline matching rate."""
        return None if self.headline is None else self.rates[self.headline]

    def to_json(self) -> dict[str, Any]:
        return {"rates": dict(self.rates), "headline": self.headline, "details": dict(self.details)}


@dataclass(frozen=True)
class Implementation:
    """One device's implementation of a stage."""

    device: str
    function: Callable[..., Any]
    backend: str

    @property
    def qualified_name(self) -> str:
        function = getattr(self.function, "py_func", self.function)
        return f"{function.__module__}.{function.__qualname__}"


@dataclass
class Stage:
    """A named step of a chain."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    implementations: dict[str, Implementation] = field(default_factory=dict)
    comparator: Callable[[Mapping[str, Any], Mapping[str, Any]], Agreement] | None = None
    reference_device: str = "cpu"

    def run(self, device: str, products: Mapping[str, Any]) -> dict[str, Any]:
        """Run the ``device`` implementation on ``products``; return its outputs by name."""
        implementation = self.implementations[device]
        result = implementation.function(**{name: products[name] for name in self.inputs})
        return self.name_outputs(result)

    def name_outputs(self, result: Any) -> dict[str, Any]:
        if len(self.outputs) == 1:
            return {self.outputs[0]: result}
        if isinstance(result, Mapping):
            missing = set(self.outputs) - set(result)
            if missing:
                raise TypeError(f"stage {self.name!r} did not return {sorted(missing)}")
            return {name: result[name] for name in self.outputs}
        if isinstance(result, Sequence) and len(result) == len(self.outputs):
            return dict(zip(self.outputs, result))
        raise TypeError(f"stage {self.name!r} must return {len(self.outputs)} outputs {self.outputs}")


class Chain:
    """An ordered set of stages, with the events they run on."""

    def __init__(self, name: str, *, inputs: Callable[[Mapping[str, Any]], Iterable[Mapping[str, Any]]],
                 description: str = "", parameters: Mapping[str, Any] | None = None,
                 quick: Mapping[str, Any] | None = None, package: str | None = None):
        """``parameters``: the chain's own options with defaults (e.g. ``{"pileup": 200}``);
        ``quick``: the values a quick run uses instead (e.g. ``{"pileup": 20, "events": 2}``);
        ``package``: the package whose code counts as the chain's own for code quality
        (defaults to the top-level package of the first implementation)."""
        self.name = name
        self.description = description
        self.make_inputs = inputs
        self.parameters = dict(parameters or {})
        self.quick = dict(quick or {})
        self.package = package
        self.stages: dict[str, Stage] = {}

    def stage(self, name: str, *, inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
              device: str = "cpu", backend: str | None = None) -> Callable[[Callable], Callable]:
        """Decorator registering ``function`` as the ``device`` implementation of stage ``name``.

        The first registration of a stage declares its inputs and outputs; later ones (other
        devices) may repeat them, and must agree.
        """
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
        backend = backend or BACKENDS[device][0]
        if backend not in BACKENDS[device]:
            raise ValueError(f"backend {backend!r} is not a {device} backend {BACKENDS[device]}")

        def register(function: Callable) -> Callable:
            existing = self.stages.get(name)
            if existing is None:
                if inputs is None or outputs is None:
                    raise ValueError(f"the first registration of stage {name!r} must declare inputs and outputs")
                existing = self.stages[name] = Stage(name, tuple(inputs), tuple(outputs))
            elif (inputs is not None and tuple(inputs) != existing.inputs) or (
                    outputs is not None and tuple(outputs) != existing.outputs):
                raise ValueError(f"stage {name!r} was declared with inputs {existing.inputs} and outputs {existing.outputs}")
            if device in existing.implementations:
                raise ValueError(f"stage {name!r} already has a {device} implementation")
            existing.implementations[device] = Implementation(device, function, backend)
            return function

        return register

    def add_stage(self, name: str, function: Callable, **options: Any) -> None:
        """Register without a decorator (same arguments as :meth:`stage`)."""
        self.stage(name, **options)(function)

    def comparator(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator registering ``compare(reference_outputs, other_outputs) -> Agreement``."""
        def register(function: Callable) -> Callable:
            if name not in self.stages:
                raise ValueError(f"register stage {name!r} before its comparator")
            self.stages[name].comparator = function
            return function

        return register

    def validate(self) -> None:
        """Check the wiring: each product produced once, and before any stage reads it."""
        if not self.stages:
            raise ValueError(f"chain {self.name!r} has no stages")
        producer = {o: s.name for s in self.stages.values() for o in s.outputs}
        if len(producer) != sum(len(s.outputs) for s in self.stages.values()):
            raise ValueError(f"chain {self.name!r} produces some product twice")
        seen: set[str] = set()
        for stage in self.stages.values():
            late = [i for i in stage.inputs if i in producer and i not in seen]
            if late:
                raise ValueError(f"stage {stage.name!r} reads {late} before {producer[late[0]]!r} produces it")
            seen.update(stage.outputs)

    def select(self, names: Sequence[str] | None) -> list[Stage]:
        """The stages to measure; UserError for an unknown name."""
        if not names:
            return list(self.stages.values())
        unknown = [n for n in names if n not in self.stages]
        if unknown:
            raise UserError(f"Chain '{self.name}' has no stage {', '.join(map(repr, unknown))}; "
                            f"its stages are {', '.join(self.stages)}.")
        return [stage for stage in self.stages.values() if stage.name in names]

    def source_products(self) -> list[str]:
        """Products the stages read that no stage produces: they come with the events."""
        produced = {o for s in self.stages.values() for o in s.outputs}
        needed = [i for s in self.stages.values() for i in s.inputs if i not in produced]
        return list(dict.fromkeys(needed))

    def edges(self) -> list[tuple[str | None, str | None, str]]:
        """(producer, consumer, product); None as producer is the host source (the events), as
        consumer the host sink (products no stage consumes)."""
        producer: dict[str, str] = {}
        result: list[tuple[str | None, str | None, str]] = []
        consumed: set[str] = set()
        for stage in self.stages.values():
            for product in stage.inputs:
                result.append((producer.get(product), stage.name, product))
                consumed.add(product)
            for product in stage.outputs:
                producer[product] = stage.name
        for product, stage_name in producer.items():
            if product not in consumed:
                result.append((stage_name, None, product))
        return result
