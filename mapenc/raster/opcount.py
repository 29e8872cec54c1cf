"""Counting what a torch computation would cost on a GPU, on any device (the CPU included): the
operations that make the host wait for the device, and the kernels launched.

``OpCount`` is a ``TorchDispatchMode``: every aten operation run inside ``with OpCount() as c:``
is seen once, after autograd, as a GPU would receive it. Waits (``c.waits``) are the operations
that need a value or a size from the device before the host can go on:

- ``_local_scalar_dense`` (``.item()``, ``int(t)``, ``bool(t)``, ``if t:``);
- ``nonzero``, ``unique`` (all forms), ``masked_select``, indexing with a boolean mask;
- ``repeat_interleave`` without ``output_size``;
- tensors made from host values (``torch.tensor(...)``, seen as ``lift_fresh``) and copies from
  the host to a device (on a GPU: a host-to-device copy, which also waits for the host memory);
- copies to the host that name it (``t.to("cpu", copy=True)``: one read of several values).

Reading a tensor back without naming the host (``.tolist()``, ``.cpu()`` or ``.numpy()`` of a
CPU tensor) is not an aten operation on the CPU and is not seen; a run on the meta device (no
data) catches those instead.
Kernels (``c.kernels``) are all operations except those that only make a view or read metadata.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_ALWAYS_WAITS = {
    "_local_scalar_dense",
    "nonzero",
    "nonzero_static",
    "unique",
    "_unique",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "masked_select",
    "lift_fresh",
}
_VIEWS = {
    "view",
    "_unsafe_view",
    "reshape",
    "alias",
    "as_strided",
    "slice",
    "select",
    "unsqueeze",
    "squeeze",
    "expand",
    "t",
    "transpose",
    "permute",
    "unbind",
    "split",
    "split_with_sizes",
    "detach",
    "view_as_real",
    "_reshape_alias",
    "lift_fresh",
    "empty",
    "empty_strided",
    "is_same_size",
    "sym_size",
    "sym_stride",
    "sym_numel",
    "sym_storage_offset",
    "_local_scalar_dense",
    "scalar_tensor",  # a Python number wrapped for an operation: a host value, no kernel
}


def _waits(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether aten operation ``name`` (overload packet) called with these arguments waits."""
    if name in _ALWAYS_WAITS:
        return True
    if name == "repeat_interleave":
        return kwargs.get("output_size") is None and (len(args) < 4 or args[3] is None)
    if name in ("index", "index_put", "index_put_", "_index_put_impl_"):
        indices = args[1] if len(args) > 1 else []
        return any(isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in indices)
    if name in ("_to_copy", "copy_"):
        source = args[1] if name == "copy_" else args[0]
        target = args[0].device if name == "copy_" else kwargs.get("device")
        if not isinstance(source, torch.Tensor) or target is None:
            return False
        target_type = torch.device(target).type
        if target_type == "cpu":  # a read back to the host (named explicitly, so seen on the CPU)
            return name == "_to_copy"
        return source.device.type == "cpu" and target_type != "meta"
    return False


class OpCount(TorchDispatchMode):
    """Counts aten operations by name (``ops``), the waits among them (``waits``, by name in
    ``wait_ops``) and the kernel-launching ones (``kernels``); see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.wait_ops: Counter[str] = Counter()
        self.kernels = 0

    @property
    def waits(self) -> int:
        return sum(self.wait_ops.values())

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        self.ops[name] += 1
        if _waits(name, args, kwargs):
            self.wait_ops[name] += 1
        if name not in _VIEWS:
            self.kernels += 1
        return func(*args, **kwargs)
