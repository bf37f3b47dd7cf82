"""The Keras engines: plain `model.fit` and `model.predict`, as a user of that Keras writes them.

Keras 3 on TensorFlow (`keras`), on JAX (`keras_jax`) and on PyTorch (`keras_torch`), and
legacy Keras 2 (`tf_keras`): one code path, `K` being the Keras module the worker imported
and `engine` its entry in core.engines. The only additions to a user's script are a
callback that records the weights and the test set's `model.predict` after each epoch and, for the fixed
batch order, the epochs' NumPy permutations fed with `shuffle=False` (on TensorFlow as one tf.data stream,
on PyTorch as one DataLoader, on JAX one `fit` call per epoch: bitwise the same updates).
"""

from __future__ import annotations

import contextlib

import numpy as np

from core.config import ModelConfig, OptimizerConfig, RunConfig
from core.data import Dataset
from core.recording import Recording, fixed_orders

INITIALIZERS = {
    "glorot_uniform": "GlorotUniform",
    "glorot_normal": "GlorotNormal",
    "he_uniform": "HeUniform",
    "he_normal": "HeNormal",
    "random_normal": "RandomNormal",
}
JIT = {
    "keras": {"auto": "auto", "on": True, "off": False},
    "tf_keras": {"auto": None, "on": True, "off": False},  # Keras 2 has no "auto"; None means off
}


def to_numpy(K, tensor) -> np.ndarray:
    """A tensor of any Keras backend as a NumPy array (Keras 2 has no keras.ops)."""
    return np.asarray(K.ops.convert_to_numpy(tensor) if hasattr(K, "ops") else tensor)


def seed_keras(K, run: RunConfig) -> str:
    """Apply the seeding policy; returns what was done, for the record."""
    s = run.seeding
    if s.policy == "keras":
        K.utils.set_random_seed(s.seed)
        return f"{K.__name__}.utils.set_random_seed({s.seed})"
    if s.policy == "numpy_tf":
        import tensorflow as tf

        np.random.seed(s.seed)
        tf.random.set_seed(s.seed)
        return f"np.random.seed({s.seed}); tf.random.set_seed({s.seed})"
    if s.policy == "explicit":
        return f"seed={s.seed}+i on every initializer and dropout layer only"
    return "no seeding"


def scale_layer_class(K):
    class Scale(K.layers.Layer):
        """The classic article's custom layer: elementwise weights from a string initializer."""

        def build(self, input_shape):
            self.w = self.add_weight(name="w", shape=(input_shape[-1],), initializer="random_normal", trainable=True)

        def call(self, inputs):
            return inputs * self.w

    return Scale


def build_model(K, m: ModelConfig, run: RunConfig, ds: Dataset, n_features: int):
    explicit = run.seeding.policy == "explicit"

    def seed(i):
        return run.seeding.seed + i if explicit else None

    def kernel_init(i):
        cls = getattr(K.initializers, INITIALIZERS[m.initializer])
        return cls(seed=seed(i)) if m.initializer != "random_normal" else cls(stddev=0.05, seed=seed(i))

    layers = [K.Input(shape=(n_features,))]
    if m.scale_layer:
        layers.append(scale_layer_class(K)(name="scale"))
    if m.kind == "cnn":
        layers += [K.layers.Reshape(ds.image_shape + (1,)),
                   K.layers.Conv2D(8, 3, activation=m.activation, kernel_initializer=kernel_init(90), name="conv_0"),
                   K.layers.MaxPooling2D(2), K.layers.Flatten()]
    if m.kind == "gru":
        layers += [K.layers.Reshape((n_features, 1)),
                   K.layers.GRU(16, kernel_initializer=kernel_init(90),
                                recurrent_initializer=K.initializers.Orthogonal(seed=seed(91)), name="gru_0")]
    for i, units in enumerate(m.hidden):
        if m.batch_norm:
            layers += [K.layers.Dense(units, kernel_initializer=kernel_init(i), name=f"dense_{i}"),
                       K.layers.BatchNormalization(name=f"bn_{i}"), K.layers.Activation(m.activation)]
        else:
            layers.append(K.layers.Dense(units, activation=m.activation, kernel_initializer=kernel_init(i),
                                         name=f"dense_{i}"))
        if m.dropout > 0:
            layers.append(K.layers.Dropout(m.dropout, seed=seed(100 + i), name=f"dropout_{i}"))
    classify = ds.task == "classification"
    mixed = run.numerics.dtype == "mixed_float16"
    layers.append(K.layers.Dense(ds.n_classes if classify else 1, activation="softmax" if classify else None,
                                 kernel_initializer=kernel_init(len(m.hidden)), name="output",
                                 dtype="float32" if mixed else None))
    return K.Sequential(layers)


def make_optimizer(K, o: OptimizerConfig):
    clip = {"clipnorm": o.clipnorm or None, "clipvalue": o.clipvalue or None}
    if o.name == "adam":
        return K.optimizers.Adam(o.learning_rate, beta_1=o.beta_1, beta_2=o.beta_2, epsilon=o.epsilon,
                                 amsgrad=o.amsgrad, **clip)
    if o.name == "sgd":
        return K.optimizers.SGD(o.learning_rate, momentum=o.momentum, nesterov=o.nesterov, **clip)
    if o.name == "rmsprop":
        return K.optimizers.RMSprop(o.learning_rate, rho=o.rho, momentum=o.momentum, epsilon=o.epsilon, **clip)
    return K.optimizers.Adagrad(o.learning_rate, initial_accumulator_value=o.initial_accumulator,
                                epsilon=o.epsilon, **clip)


def named_weights(model) -> tuple[list[str], list]:
    """Canonical 'layer/variable' names and the variables, layer by layer (the same order in Keras 2 and 3)."""
    names, variables = [], []
    for layer in model.layers:
        for v in layer.weights:
            names.append(f"{layer.name}/{v.name.split('/')[-1].split(':')[0]}")
            variables.append(v)
    return names, variables


def keras_normalizer(K):
    def normalize(fit_rows, arrays):
        layer = K.layers.Normalization()
        layer.adapt(fit_rows)
        return [to_numpy(K, layer(a)) for a in arrays]

    return normalize


def prepare(K, engine, run: RunConfig) -> str:
    """What a process sets before it builds any model: the dtype policy and the seeding (returned, for the record)."""
    n = run.numerics
    if n.dtype == "float64":
        K.backend.set_floatx("float64")
    if n.dtype == "mixed_float16":
        K.mixed_precision.set_global_policy("mixed_float16")
    return seed_keras(K, run)


def train_keras(K, engine, run: RunConfig, ds: Dataset, x_train, y_train, x_test, emit, wait_for_init,
          built: tuple | None = None) -> dict:
    """Build, compile and fit one model; returns the run's record (plain data).

    `built`: (model, what the seeding did) when the model was built beforehand, next to another in this process.
    """
    n = run.numerics
    if built is None:
        seeding = prepare(K, engine, run)
        model = build_model(K, run.model, run, ds, x_train.shape[1])
    else:
        model, seeding = built
    names, variables = named_weights(model)
    initial = wait_for_init()
    if initial is not None:
        for v, name in zip(variables, names):
            v.assign(np.asarray(initial[name]).astype(to_numpy(K, v).dtype))
    classify = ds.task == "classification"
    loss = K.losses.SparseCategoricalCrossentropy() if classify else K.losses.MeanSquaredError()
    metric = K.metrics.SparseCategoricalAccuracy(name="metric") if classify else K.metrics.MeanAbsoluteError(name="metric")
    t = run.training
    steps = -(-len(x_train) // t.batch_size)
    # One execution per epoch: bitwise the same updates as steps_per_execution=1, with
    # far less Python between steps (the tests against plain Keras scripts check it).
    # Keras refuses more than one step per execution on PyTorch.
    per_execution = 1 if engine.framework == "torch" else steps
    model.compile(optimizer=make_optimizer(K, run.optimizer), loss=loss, metrics=[metric],
                  jit_compile=JIT[engine.keras][n.xla], steps_per_execution=per_execution)

    predict, predict_test = predictors(engine, model, x_test)

    def weights():
        return [to_numpy(K, v) for v in variables]

    rec = Recording(names, emit, ds.y_test, ds.task, run.training.epochs)
    rec.initial(weights(), predict_test())

    class Snapshot(K.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if not rec.epoch_end(logs["loss"], logs["metric"], weights(), predict_test()):
                self.model.stop_training = True

    fit = dict(callbacks=[Snapshot()], verbose=0)
    if t.batch_order == "fixed":
        orders = fixed_orders(len(x_train), t.epochs, t.shuffle_seed)
        fed = _fixed_order_fit(model, engine, x_train, y_train, orders, t.batch_size, steps, fit)
    else:
        model.fit(x_train, y_train, batch_size=t.batch_size, shuffle=t.batch_order == "framework", epochs=t.epochs,
                  **fit)
        fed = f"fit(x, y, shuffle={t.batch_order == 'framework'})"

    inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    effective = {
        "seeding": seeding,
        "optimizer": inner.get_config(),
        "optimizer_class": type(model.optimizer).__name__,
        "jit_compile": bool(model.jit_compile),
        "dtype_policy": K.mixed_precision.global_policy().name,
        "floatx": K.backend.floatx(),
        "fit": fed,
        "steps_per_execution": per_execution,
        "predict": f"model.predict(x), batches of {PREDICT_BATCH_SIZE}",
    }
    return {"recording": rec, "effective": effective, "versions": _versions(K, engine), "predict": predict}


PREDICT_BATCH_SIZE = 32  # model.predict's default batch size in Keras 2 and 3: a plain model.predict(x)
# Keras 3's predict unrolls steps_per_execution batches into one compiled program (on TensorFlow and JAX), which
# takes longer to build the more batches there are (17 s for the 1,250 batches of a 40,000-row test set on
# TensorFlow, measured): predict takes at most this many per call. The batches and their numbers stay the same.
PREDICT_STEPS_PER_EXECUTION = 32


def predictors(engine, model, x_test) -> tuple:
    """(predict(x), predict_test()): model.predict as a plain script calls it, and the same on the test set, cheap
    enough to record after every epoch. (A model's call on the whole test set differs from predict's batches of 32
    in the last bits: up to 1.2e-7 measured on Keras 3.)

    Around each call: at most PREDICT_STEPS_PER_EXECUTION batches per execution on Keras 3 (Keras 2 loops inside its
    graph); on PyTorch, torch's global generator kept aside (predict's DataLoader draws a seed from it, and so does
    fit's shuffle: the records of a run must change nothing in it). On TensorFlow the test set's batches are one
    tf.data stream made once: the same batches as model.predict(x_test) makes (the tests against plain scripts check
    the bits), at ~5 ms a call instead of ~60 ms.
    """
    def predict(x, batch_size: int | None = PREDICT_BATCH_SIZE):
        kept = model.steps_per_execution if engine.keras == "keras" else None
        if kept is not None:
            model.steps_per_execution = min(kept, PREDICT_STEPS_PER_EXECUTION)
        try:
            with _random_state_kept(engine):
                return model.predict(x, batch_size=batch_size, verbose=0)
        finally:
            if kept is not None:
                model.steps_per_execution = kept

    test_set, batch_size = x_test, PREDICT_BATCH_SIZE
    if engine.framework == "tensorflow":
        import tensorflow as tf

        test_set, batch_size = tf.data.Dataset.from_tensor_slices(x_test).batch(PREDICT_BATCH_SIZE), None
    return predict, lambda: predict(test_set, batch_size)


def _random_state_kept(engine):
    """A context that restores the framework's global random state on exit (PyTorch's CPU generator), or nothing."""
    if engine.framework == "torch":
        import torch

        return torch.random.fork_rng(devices=[])
    return contextlib.nullcontext()


def _fixed_order_fit(model, engine, x_train, y_train, orders: list, batch_size: int, steps: int, fit: dict) -> str:
    """Fit on each epoch's NumPy permutation in turn, unshuffled; returns how the batches were fed, for the record."""
    if engine.framework == "tensorflow":
        # One fit call over a tf.data stream of the epochs' permutations (steps_per_epoch cuts it into
        # epochs): the same updates as a fit call per epoch, with less Python between epochs.
        import tensorflow as tf

        batches = tf.data.Dataset.from_tensor_slices(np.stack(orders)).flat_map(
            lambda order: tf.data.Dataset.from_tensor_slices(
                (tf.gather(x_train, order), tf.gather(y_train, order))).batch(batch_size))
        model.fit(batches, steps_per_epoch=steps, shuffle=False, epochs=len(orders), **fit)
        return f"fit(tf.data of per-epoch NumPy permutations, steps_per_epoch={steps})"
    if engine.framework == "torch":
        # The same one fit call over a DataLoader that takes each batch's rows by their indices: the same
        # updates as a fit call per epoch, without fit's set-up and Keras's array loader on every epoch.
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        indices = [epoch[start:start + batch_size] for epoch in torch.as_tensor(np.stack(orders))
                   for start in range(0, len(x_train), batch_size)]
        rows = TensorDataset(torch.as_tensor(x_train), torch.as_tensor(y_train))
        model.fit(DataLoader(rows, sampler=indices, batch_size=None), steps_per_epoch=steps, epochs=len(orders), **fit)
        return f"fit(DataLoader of per-epoch NumPy permutations, steps_per_epoch={steps})"
    for order in orders:
        model.fit(x_train[order], y_train[order], batch_size=batch_size, shuffle=False, epochs=1, **fit)
        if model.stop_training:
            break
    return "fit(x[order], y[order], shuffle=False), once per epoch"


def _versions(K, engine) -> dict:
    import importlib

    framework = importlib.import_module(engine.framework)
    return {"keras_module": K.__name__, "keras": K.__version__, engine.framework: framework.__version__}
