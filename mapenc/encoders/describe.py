"""``describe(module, input_shape)``: what each layer keeps of the input, as numbers.

One row per leaf module, in execution order, with its output shape ``[N, C, H, W]``, elements per
sample, parameters, multiply-accumulates per sample and receptive field. Below the rows: the
bottleneck (the spatial maps flattened into the first fully connected layer) and the compression
ratio ``input elements / bottleneck elements``.

Receptive fields follow the standard recurrence per axis, ``r_out = r_in + (k_eff - 1) * j_in``,
``j_out = j_in * s`` (``k_eff = d * (k - 1) + 1``), through conv and pooling layers; a transposed
conv divides the jump by its stride (``j_out = j_in / s``, ``r_out = r_in + (k - 1) * j_out``);
nearest/bilinear resizing rescales the jump; elementwise layers change nothing; residual sums and
concatenations take the largest field of their inputs. Once the map is flattened or pooled to a
point, every value depends on the whole input and the field is the input size. The recurrence is
not clipped to the image: a field larger than the input means padding is inside it.

MACs count conv, transposed-conv and linear layers only (``out_elems * C_in/groups * kh * kw``,
``in_elems * C_out/groups * kh * kw``, ``in * out``); norms, activations and pooling add none.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from mapenc.errors import ConfigError

Pair = tuple[float, float]
Source = tuple[str, tuple[int, ...]]  # (layer name, per-sample shape) of a spatial map


@dataclass(frozen=True)
class Lineage:
    """What one tensor depends on: receptive field and jump in input pixels, and its sources.

    ``field`` is None when the input has no pixels (a decoder's latent). ``sources`` names the
    spatial maps (``[C, H, W]`` per sample) whose values the tensor holds, for the bottleneck.
    """

    field: Pair | None
    jump: Pair
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class LayerRow:
    """One leaf module's output: shape per sample, elements, parameters, MACs, receptive field."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    elements: int
    params: int
    macs: int
    receptive_field_px: Pair | None


@dataclass(frozen=True)
class Description:
    """The result of ``describe``: rows, totals, bottleneck and compression ratio.

    ``str()`` is an aligned text table; ``to_dict()``/``to_json()`` give the same numbers.
    """

    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]
    total_params: int
    pixel_size_m: float | None = None
    bottleneck: tuple[Source, ...] = field(default=())

    @property
    def input_elements(self) -> int:
        """Elements of one input sample."""
        return math.prod(self.input_shape)

    @property
    def total_macs(self) -> int:
        """Multiply-accumulates of one forward pass, per sample."""
        return sum(row.macs for row in self.rows)

    @property
    def bottleneck_elements(self) -> int | None:
        """Elements per sample entering the first fully connected layer; None without one."""
        return sum(math.prod(shape) for _, shape in self.bottleneck) if self.bottleneck else None

    @property
    def compression_ratio(self) -> float | None:
        """Input elements / bottleneck elements; None when there is no bottleneck."""
        elements = self.bottleneck_elements
        return self.input_elements / elements if elements else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every number in the description."""
        return {
            "input_shape": list(self.input_shape),
            "input_elements": self.input_elements,
            "pixel_size_m": self.pixel_size_m,
            "layers": [
                {
                    **asdict(row),
                    "output_shape": list(row.output_shape),
                    "receptive_field_px": _list_or_none(row.receptive_field_px),
                    "receptive_field_m": _list_or_none(self._metres(row.receptive_field_px)),
                }
                for row in self.rows
            ],
            "total_params": self.total_params,
            "total_macs": self.total_macs,
            "bottleneck": [
                {"layer": name, "shape": list(shape), "elements": math.prod(shape)}
                for name, shape in self.bottleneck
            ],
            "bottleneck_elements": self.bottleneck_elements,
            "compression_ratio": self.compression_ratio,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict()`` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def _metres(self, pixels: Pair | None) -> Pair | None:
        if pixels is None or self.pixel_size_m is None:
            return None
        return (pixels[0] * self.pixel_size_m, pixels[1] * self.pixel_size_m)

    def __str__(self) -> str:
        header = ["layer", "type", "output", "elements", "params", "MACs", "RF px"]
        if self.pixel_size_m is not None:
            header.append("RF m")
        table = [header, ["input", "", shape_text(self.input_shape), f"{self.input_elements:,}"]]
        for row in self.rows:
            cells = [row.name, row.kind, shape_text(row.output_shape), f"{row.elements:,}"]
            cells += [f"{row.params:,}", f"{row.macs:,}", _pair_text(row.receptive_field_px)]
            if self.pixel_size_m is not None:
                cells.append(_pair_text(self._metres(row.receptive_field_px)))
            table.append(cells)
        widths = [max(len(r[i]) for r in table if i < len(r)) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in table
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"total params: {self.total_params:,}   total MACs: {self.total_macs:,}")
        if self.bottleneck:
            maps = " + ".join(f"{name} {shape_text(shape)}" for name, shape in self.bottleneck)
            lines.append(
                f"bottleneck: {maps} = {self.bottleneck_elements:,} elements; compression "
                f"{self.input_elements:,} / {self.bottleneck_elements:,} = "
                f"{self.compression_ratio:.2f}x"
            )
        else:
            lines.append("bottleneck: none (no fully connected layer after a spatial map)")
        return "\n".join(lines)


def shape_text(per_sample: Sequence[int]) -> str:
    """``(C, H, W)`` as ``[N, C, H, W]``."""
    return "[" + ", ".join(["N", *(str(v) for v in per_sample)]) + "]"


def _pair_text(pair: Pair | None) -> str:
    if pair is None:
        return "-"
    return f"{pair[0]:g}" if pair[0] == pair[1] else f"{pair[0]:g}x{pair[1]:g}"


def _list_or_none(pair: Pair | None) -> list[float] | None:
    return None if pair is None else list(pair)


def _tensors(values: Any) -> Iterator[torch.Tensor]:
    """Tensors among ``values`` (args, kwargs values, one level of lists and tuples)."""
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, torch.Tensor))


class _Tracer(TorchFunctionMode):
    """Follows receptive fields and sources through every torch call of one forward pass.

    Functional calls get the generic rule (see the module docstring); leaf modules' forward hooks
    then overwrite their output's lineage with the exact rule for the layer and add a row.
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.input_shape = input_shape
        self.whole: Pair | None = (
            (float(input_shape[1]), float(input_shape[2])) if len(input_shape) == 3 else None
        )
        self.lineages: dict[int, Lineage] = {}
        self.alive: list[torch.Tensor] = []  # keeps ids unique while the pass runs
        self.rows: list[LayerRow] = []
        self.bottleneck: tuple[Source, ...] = ()
        self.seen: set[int] = set()
        self.names = {id(m): name for name, m in model.named_modules()}
        leaves = [m for m in model.modules() if not list(m.children())]
        self.hooks = [m.register_forward_hook(self._after_leaf) for m in leaves]

    def start(self, x: torch.Tensor) -> None:
        """Register the input tensor ``x``."""
        spatial = self.whole is not None
        field = (1.0, 1.0) if spatial else None
        self._set(x, Lineage(field, (1.0, 1.0), (("input", self.input_shape),) if spatial else ()))

    def close(self) -> None:
        """Remove the hooks."""
        for hook in self.hooks:
            hook.remove()

    def _set(self, tensor: torch.Tensor, lineage: Lineage) -> None:
        self.lineages[id(tensor)] = lineage
        self.alive.append(tensor)

    def _get(self, tensor: torch.Tensor) -> Lineage | None:
        return self.lineages.get(id(tensor))

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in _tensors([*args, *kwargs.values()]) if self._get(t) is not None]
        if inputs:
            name = getattr(func, "__name__", "op")
            label = f"{self.rows[-1].name}>{name}" if self.rows else name
            for result in _tensors([out]):
                self._set(result, self._combine(inputs, result, label))
        return out

    def _combine(self, inputs: list[torch.Tensor], out: torch.Tensor, label: str) -> Lineage:
        """Generic rule: largest field of the inputs, jump rescaled by the size change."""
        lineages = [t for t in (self._get(x) for x in inputs) if t is not None]
        first = inputs[0]
        spatial = out.dim() == 4 and all(x.dim() == 4 for x in inputs)
        if not spatial:
            sources = tuple(dict.fromkeys(s for t in lineages for s in t.sources))
            return Lineage(self.whole, (1.0, 1.0), sources)
        fields = [t.field for t in lineages if t.field is not None]
        field = (max(f[0] for f in fields), max(f[1] for f in fields)) if fields else None
        jump = lineages[0].jump
        scale = (first.shape[2] / out.shape[2], first.shape[3] / out.shape[3])
        return Lineage(
            field,
            (jump[0] * scale[0], jump[1] * scale[1]),
            ((label, tuple(out.shape[1:])),),
        )

    def _after_leaf(self, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if not isinstance(out, torch.Tensor):
            return
        inputs = [t for t in _tensors(args) if self._get(t) is not None]
        name = self.names.get(id(module), type(module).__name__)
        lineage = self._get(out)
        if inputs:
            lineage = self._layer_lineage(module, inputs[0], out, name)
            self._set(out, lineage)
        if isinstance(module, nn.Linear) and not self.bottleneck and inputs:
            incoming = self._get(inputs[0])
            self.bottleneck = (
                tuple(s for s in incoming.sources if len(s[1]) == 3) if incoming else ()
            )
        first_call = id(module) not in self.seen
        self.seen.add(id(module))
        batch = out.shape[0]
        self.rows.append(
            LayerRow(
                name=name,
                kind=type(module).__name__,
                output_shape=tuple(out.shape[1:]),
                elements=out.numel() // batch,
                params=sum(p.numel() for p in module.parameters()) if first_call else 0,
                macs=_macs(module, args, out),
                receptive_field_px=lineage.field if lineage else None,
            )
        )

    def _layer_lineage(
        self, module: nn.Module, x: torch.Tensor, out: torch.Tensor, name: str
    ) -> Lineage:
        """Exact rule for resampling layers; the generic rule for everything else."""
        incoming = self._get(x)
        assert incoming is not None
        source = ((name, tuple(out.shape[1:])),)
        if out.dim() != 4 or x.dim() != 4 or incoming.field is None:
            generic = self._combine([x], out, name)
            return Lineage(
                generic.field, generic.jump, generic.sources if out.dim() != 4 else source
            )
        if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) and out.shape[2:] == (
            1,
            1,
        ):
            return Lineage(self.whole, incoming.jump, source)
        geometry = _geometry(module)
        if geometry is None:
            generic = self._combine([x], out, name)
            return Lineage(generic.field, generic.jump, source)
        kernel, stride, transposed = geometry
        field, jump = incoming.field, incoming.jump
        if transposed:
            jump = (jump[0] / stride[0], jump[1] / stride[1])
            field = (field[0] + (kernel[0] - 1) * jump[0], field[1] + (kernel[1] - 1) * jump[1])
        else:
            field = (field[0] + (kernel[0] - 1) * jump[0], field[1] + (kernel[1] - 1) * jump[1])
            jump = (jump[0] * stride[0], jump[1] * stride[1])
        return Lineage(field, jump, source)


def _as_pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _geometry(module: nn.Module) -> tuple[tuple[int, int], tuple[int, int], bool] | None:
    """(effective kernel, stride, is transposed) of a conv or pooling layer; None otherwise."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d)):
        kernel, dilation = _as_pair(module.kernel_size), _as_pair(module.dilation)
        effective = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
        stride = _as_pair(module.stride)
        return effective, stride, isinstance(module, nn.ConvTranspose2d)
    if isinstance(module, nn.AvgPool2d):
        return _as_pair(module.kernel_size), _as_pair(module.stride), False
    return None


def _macs(module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> int:
    """Multiply-accumulates per sample of conv, transposed conv and linear layers; 0 otherwise."""
    batch = out.shape[0]
    if isinstance(module, nn.Conv2d):
        kh, kw = _as_pair(module.kernel_size)
        per_output = module.in_channels // module.groups * kh * kw
        return out.numel() // batch * per_output
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = _as_pair(module.kernel_size)
        per_input = module.out_channels // module.groups * kh * kw
        return args[0].numel() // batch * per_input
    if isinstance(module, nn.Linear):
        return out.numel() // batch * module.in_features
    return 0


def describe(
    module: nn.Module, input_shape: Sequence[int], pixel_size_m: float | None = None
) -> Description:
    """Run one sample of shape ``input_shape`` (``(C, H, W)``, or ``(D,)`` for a decoder) through
    ``module`` in eval mode and describe every leaf layer.

    ``pixel_size_m`` adds receptive fields in metres. Raises ConfigError when the module rejects the
    shape or the pixel size is not positive.
    """
    shape = tuple(int(v) for v in input_shape)
    if not shape or min(shape) < 1:
        raise ConfigError(f"input_shape must be positive sizes, got {list(input_shape)}")
    if pixel_size_m is not None and not pixel_size_m > 0:
        raise ConfigError(f"pixel_size_m must be positive, got {pixel_size_m!r}")
    parameter = next(module.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    x = torch.zeros((1, *shape), device=device)
    tracer = _Tracer(module, shape)
    was_training = module.training
    module.eval()
    try:
        tracer.start(x)
        with torch.no_grad(), tracer:
            module(x)
    except RuntimeError as err:
        message = f"{type(module).__name__} cannot take input {shape_text(shape)}: {err}"
        raise ConfigError(message) from err
    finally:
        tracer.close()
        module.train(was_training)
    return Description(
        input_shape=shape,
        rows=tuple(tracer.rows),
        total_params=sum(p.numel() for p in module.parameters()),
        pixel_size_m=pixel_size_m,
        bottleneck=tracer.bottleneck,
    )
