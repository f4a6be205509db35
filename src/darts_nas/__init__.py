"""darts-nas: differentiable architecture search.

``darts_nas.create_model("darts_v2_cifar10")`` builds a published cell's evaluation network (see
:mod:`darts_nas.nets`); everything else lives in the submodules (``spaces``, ``strategies``, ``genotypes``,
``data``, ``run``).
"""

__all__ = ["create_model", "list_models"]


def __getattr__(name):  # imported lazily so `import darts_nas` stays cheap
    if name in __all__:
        from . import nets
        return getattr(nets, name)
    raise AttributeError(f"module 'darts_nas' has no attribute {name!r}")
