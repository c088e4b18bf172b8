"""The ResNet-style backbone shared by the extractor networks, sized for training on a CPU.

112x112 RGB in [-1, 1] -> a stride-2 stem -> four residual stages (56, 28, 14, 7 px) -> a global
depthwise 7x7 projection -> a `dim`-d embedding, L2-normalised. Built from stock Keras layers only, so a
saved `.keras` file loads without custom code.
"""
from __future__ import annotations

import os


def quiet_tensorflow() -> None:
    """Ask TensorFlow for fewer log lines (it still prints some CUDA probing that nothing silences). Call it
    before TensorFlow or Keras is first imported: it sets environment variables that TensorFlow reads then."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")


def _block(x, filters: int, stride: int, name: str):
    from keras import layers

    shortcut = x
    y = layers.BatchNormalization(name=f"{name}_bn0")(x)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(y)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_down")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_downbn")(shortcut)
    return layers.Add(name=f"{name}_add")([y, shortcut])


def build_backbone(dim: int = 128, widths=(24, 48, 96, 192), depths=(1, 2, 2, 1), name: str = "facenet"):
    """A Keras model mapping (None, 112, 112, 3) float inputs to (None, dim) unit vectors."""
    import keras
    from keras import layers

    inputs = keras.Input((112, 112, 3), name="chip")
    x = layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.PReLU(shared_axes=[1, 2], name="stem_prelu")(x)  # 56x56
    for s, (w, d) in enumerate(zip(widths, depths)):
        for b in range(d):
            stride = 2 if b == 0 and s > 0 else 1
            x = _block(x, w, stride, f"s{s}b{b}")
    x = layers.BatchNormalization(name="head_bn")(x)  # 7x7
    # global depthwise conv keeps where on the face a feature was seen, unlike average pooling
    x = layers.DepthwiseConv2D(7, padding="valid", use_bias=False, name="head_gdc")(x)
    x = layers.BatchNormalization(name="head_gdc_bn")(x)
    x = layers.Flatten(name="head_flat")(x)
    x = layers.Dropout(0.1, name="head_drop")(x)
    x = layers.Dense(dim, use_bias=False, name="head_fc")(x)
    x = layers.BatchNormalization(name="head_fc_bn")(x)
    outputs = layers.UnitNormalization(name="embedding")(x)
    return keras.Model(inputs, outputs, name=name)


def build_pair_head(dim: int = 128, hidden: int = 64):
    """The siamese pair classifier's head: pair features (|a - b| and a * b, 2*dim) -> one logit, same = 1."""
    import keras
    from keras import layers

    inputs = keras.Input((2 * dim,), name="pair_features")
    x = layers.Dense(hidden, activation="relu", name="pair_hidden")(inputs)
    return keras.Model(inputs, layers.Dense(1, name="pair_logit")(x), name="pair_head")
