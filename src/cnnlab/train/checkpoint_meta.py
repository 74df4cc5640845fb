"""The schema of a checkpoint's metadata: what ``save_checkpoint`` writes in ``__meta__``,
checked field by field when it is read back (types, ranges, nesting), so that a damaged or
forged file is one clean error, not a KeyError or a TypeError on resume."""

from __future__ import annotations

from cnnlab.train import schema as S

__all__ = ["meta_schema"]


def meta_schema(format_name: str, version: int) -> S.Dict:
    """The schema of a checkpoint's ``__meta__`` JSON (see cnnlab.train.checkpoint)."""
    numbers = S.List(S.Num(finite=False))  # a metric may be nan (no labels), a best inf
    trainer = S.Dict({
        "history": S.Map(numbers),
        "batch_in_epoch": S.Int(low=0),
        "partial": S.Map(S.Num(finite=False)),
        "callbacks": S.List(S.Dict({"type": S.Str(), "state": S.Map(S.Json(depth=4))})),
        "seed": S.Json(depth=2),
    }, rest=S.Json(depth=8))
    model = S.Dict({
        "name": S.Str(),
        "num_classes": S.Int(low=1),
        "input_shape": S.List(S.Int(low=1), min_len=3, max_len=3),
        "dropout": S.Num(low=0, high=1, nullable=True),
        "dataset": S.Str(),
        "data_dir": S.Str(nullable=True),
        "classes": S.List(S.Str()),
    }, optional=("dropout", "dataset", "data_dir", "classes"), rest=S.Json(depth=8))
    return S.Dict({
        "format": S.Str(choices=(format_name,)),
        "version": S.Int(low=1, high=version),
        "epoch": S.Int(low=0),
        "step": S.Int(low=0),
        "model_rngs": S.Map(S.Json(depth=4)),
        "rng_states": S.Map(S.Json(depth=4)),
        "history": S.Map(numbers),
        "extra": S.Dict({"trainer": trainer, "model": model, "settings": S.Json(depth=6)},
                        optional=("trainer", "model", "settings"), rest=S.Json(depth=16)),
        "architecture": S.Dict({
            "repr": S.Str(max_len=1 << 20),
            "parameters": S.Map(S.List(S.Int(low=0, high=1 << 31), max_len=8)),
        }),
        "optimizer": S.Dict({
            "type": S.Str(),
            "groups": S.List(S.Dict({"params": S.List(S.Int(low=0))}, rest=S.Json(depth=2))),
        }),
    }, optional=("model_rngs", "rng_states", "history", "extra", "architecture", "optimizer"))
