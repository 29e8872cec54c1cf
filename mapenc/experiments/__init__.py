"""Experiments: each one trains a model into a run folder, evaluates a run, and reloads one.

Every experiment module (``trajectory``, ``mnist``) has a frozen config dataclass and
``train(config, run_dir) -> run folder``, ``evaluate(run_dir, data) -> result dataclass`` (with
``to_dict()`` for JSON) and ``load_run(run_dir) -> (config, model)``. ``demo`` runs them all on
embedded data, ``plots`` and ``render`` draw their pictures. Commands sit above this layer; the
models, data and maps below it know nothing of it.
"""
