"""The model zoo: the classic CNNs, built from :mod:`cnnlab.nn`, channels-last.

``get(name, **kw)`` builds a model by name and ``names()`` lists them:

| name | paper | parameters (224x224x3, 1000 classes unless said) |
|---|---|---|
| ``lenet5`` | LeCun et al. 1998 (modern: ReLU, max pool, 28x28x1, 10 classes) | 61,706 |
| ``alexnet`` | Krizhevsky et al. 2012 (torchvision's single tower) | 61,100,840 |
| ``vgg11/13/16/19`` (``_bn``) | Simonyan and Zisserman 2014 | VGG-16 138,357,544 |
| ``resnet18/34/50/101/152`` | He et al. 2015 (ImageNet) | 11,689,512 / ... / 25,557,032 |
| ``resnet20/32/44/56/110`` | He et al. 2015, sec. 4.2 (CIFAR, option A) | 269,722 (ResNet-20) |
| ``googlenet`` | Szegedy et al. 2014 (``variant='torchvision'`` too) | 6,998,552 / 6,624,904 |

Every builder takes ``num_classes``, ``in_channels``, ``input_size`` (H = W or (H, W)),
``seed`` (int, Generator or None), ``init`` (None for the family's default, or one
initializer for every weight; ``'zeros'`` builds big models at almost no cost, e.g. before
loading weights), ``dtype`` (float32 or float64) and, except LeNet-5, ``width`` (a multiplier
of the channels, for small versions of the same network). A built model records ``arch``,
``num_classes``, ``input_shape`` (one sample, for ``nn.summary``), ``head_name`` (its output
layer) and ``flatten_inputs`` (for PyTorch weight import); models from :func:`get` also
``config``, the name and keywords that rebuild them: ``get(**model.config)``.

Layer names follow torchvision, so PyTorch weights load with :func:`load_torch_state_dict`.

>>> import numpy as np, cnnlab as cl
>>> from cnnlab import models
>>> model = models.get("resnet20", num_classes=10, seed=0)
>>> model(cl.tensor(np.zeros((2, 32, 32, 3), np.float32))).shape
(2, 10)
"""

from __future__ import annotations

from cnnlab.models.alexnet import AlexNet, alexnet
from cnnlab.models.googlenet import GoogLeNet, googlenet, googlenet_loss
from cnnlab.models.lenet import LeNet5, lenet5
from cnnlab.models.multitask import (
    MultiLabelHead,
    label_mask,
    masked_bce,
    multilabel,
    per_task_accuracy,
    per_task_metrics,
    predict_labels,
)
from cnnlab.models.resnet import (
    ResNet,
    resnet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
)
from cnnlab.models.resnet_cifar import (
    CifarResNet,
    ShortcutA,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
    resnet_cifar,
)
from cnnlab.models.torch_import import (
    convert_torch_state_dict,
    load_torch_state_dict,
    torch_state_dict,
)
from cnnlab.models.transfer import (
    FrozenBatchNorm1D,
    FrozenBatchNorm2D,
    freeze,
    freeze_until,
    head_name,
    load_pretrained,
    prepare_fine_tuning,
    replace_head,
    unfreeze,
)
from cnnlab.models.vgg import (
    VGG,
    vgg,
    vgg11,
    vgg11_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg19,
    vgg19_bn,
)

_REGISTRY = {
    "lenet5": lenet5,
    "alexnet": alexnet,
    "vgg11": vgg11,
    "vgg13": vgg13,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "vgg11_bn": vgg11_bn,
    "vgg13_bn": vgg13_bn,
    "vgg16_bn": vgg16_bn,
    "vgg19_bn": vgg19_bn,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet152": resnet152,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet44": resnet44,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "googlenet": googlenet,
}


def names() -> list:
    """The names :func:`get` knows, in the order of the table above.

    >>> names()[:3]
    ['lenet5', 'alexnet', 'vgg11']
    """
    return list(_REGISTRY)


def default_input_shape(name: str) -> tuple[int, int, int]:
    """(H, W, C) of one input of the model ``name`` built with its defaults.

    >>> default_input_shape("lenet5"), default_input_shape("resnet20")
    ((28, 28, 1), (32, 32, 3))
    """
    # built with zero weights: NumPy allocates zero pages lazily, so this costs almost nothing
    return tuple(int(v) for v in get(name, init="zeros").input_shape)


def get(name: str, **kw):
    """Build the model ``name`` (see :func:`names`) with the builder's keywords ``kw``.

    The model records ``config = {"name": name, **kw}``, so ``get(**model.config)`` builds the
    same architecture again (and the same weights when ``seed`` was an int).

    Shape:
        (N, H, W, in_channels) -> (N, num_classes).

    >>> import numpy as np, cnnlab as cl
    >>> get("lenet5", seed=0)(cl.tensor(np.zeros((1, 28, 28, 1), np.float32))).shape
    (1, 10)
    """
    if not isinstance(name, str) or name.lower() not in _REGISTRY:
        raise ValueError(f"models.get: unknown model {name!r}; the models are {names()}")
    model = _REGISTRY[name.lower()](**kw)
    model.config = {"name": name.lower(), **kw}
    return model


__all__ = [
    "default_input_shape",
    "VGG",
    "AlexNet",
    "CifarResNet",
    "FrozenBatchNorm1D",
    "FrozenBatchNorm2D",
    "GoogLeNet",
    "LeNet5",
    "MultiLabelHead",
    "ResNet",
    "ShortcutA",
    "alexnet",
    "convert_torch_state_dict",
    "freeze",
    "freeze_until",
    "get",
    "googlenet",
    "googlenet_loss",
    "head_name",
    "label_mask",
    "lenet5",
    "load_pretrained",
    "load_torch_state_dict",
    "masked_bce",
    "multilabel",
    "names",
    "per_task_accuracy",
    "per_task_metrics",
    "predict_labels",
    "prepare_fine_tuning",
    "replace_head",
    "resnet",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet44",
    "resnet50",
    "resnet56",
    "resnet101",
    "resnet110",
    "resnet152",
    "resnet_cifar",
    "torch_state_dict",
    "unfreeze",
    "vgg",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]
