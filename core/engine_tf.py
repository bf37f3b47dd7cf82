"""The `tensorflow` engine: no Keras. tf.Variable weights, tf.GradientTape, a
tf.function training step, and either TensorFlow's own training kernels
(tf.raw_ops.ResourceApplyAdam & co) or the textbook (PyTorch) update in TF ops.

Variables carry the same canonical names and order as the Keras engines, so A and
B can share initial weights and be compared variable by variable. Dense networks
only (mlp, with the scale layer, dropout and batch norm).
"""

from __future__ import annotations

import random

import numpy as np

from core.config import RunConfig
from core.data import Dataset
from core.recording import Recording, fixed_orders

BN_MOMENTUM, BN_EPSILON = 0.99, 1e-3  # Keras BatchNormalization defaults


def seed_tensorflow(tf, run: RunConfig) -> str:
    s = run.seeding
    if s.policy in ("keras", "numpy_tf"):
        random.seed(s.seed)
        np.random.seed(s.seed)
        tf.random.set_seed(s.seed)
        return f"random/np.random/tf.random seeded with {s.seed}"
    if s.policy == "explicit":
        return f"stateless initializers seeded with ({s.seed}, i)"
    return "no seeding"


class Initializer:
    """Keras's initializer formulas, drawn with TF random ops."""

    def __init__(self, tf, run: RunConfig, dtype):
        self.tf, self.dtype = tf, dtype
        self.seed = run.seeding.seed if run.seeding.policy == "explicit" else None

    def _uniform(self, shape, limit, i):
        tf = self.tf
        if self.seed is None:
            return tf.random.uniform(shape, -limit, limit, dtype=self.dtype)
        return tf.random.stateless_uniform(shape, [self.seed, i], -limit, limit, dtype=self.dtype)

    def normal(self, shape, stddev, i, truncated):
        tf = self.tf
        if self.seed is None:
            draw = tf.random.truncated_normal if truncated else tf.random.normal
            return draw(shape, stddev=stddev, dtype=self.dtype)
        draw = tf.random.stateless_truncated_normal if truncated else tf.random.stateless_normal
        return draw(shape, [self.seed, i], stddev=stddev, dtype=self.dtype)

    def kernel(self, name: str, shape, i):
        fan_in, fan_out = shape
        if name == "glorot_uniform":
            return self._uniform(shape, np.sqrt(6.0 / (fan_in + fan_out)), i)
        if name == "he_uniform":
            return self._uniform(shape, np.sqrt(6.0 / fan_in), i)
        if name == "glorot_normal":  # truncated normal, std corrected for the truncation as Keras does
            return self.normal(shape, np.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978, i, True)
        if name == "he_normal":
            return self.normal(shape, np.sqrt(2.0 / fan_in) / 0.87962566103423978, i, True)
        return self.normal(shape, 0.05, i, False)


class Optimizer:
    """Slots and one update per variable: TF's fused kernels or the textbook form."""

    def __init__(self, tf, run: RunConfig, variables, dtype):
        self.tf, self.o, self.form, self.dtype = tf, run.optimizer, run.engine.raw_optimizer, dtype
        o = self.o
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        first = o.initial_accumulator if o.name == "adagrad" else 0.0

        def slots(fill=0.0):
            return [tf.Variable(tf.fill(v.shape, tf.constant(fill, dtype)), trainable=False) for v in variables]

        self.m, self.v, self.vmax = slots(), slots(first), slots() if o.amsgrad else None

    def clip(self, grads):
        tf, o = self.tf, self.o
        if o.clipnorm > 0:  # Keras 3's per-variable formula, not tf.clip_by_norm
            out = []
            for g in grads:
                l2sum = tf.reduce_sum(tf.square(g), keepdims=True)
                l2norm = tf.where(l2sum > 0, tf.sqrt(tf.where(l2sum > 0, l2sum, tf.ones_like(l2sum))), l2sum)
                out.append(g * o.clipnorm / tf.maximum(l2norm, o.clipnorm))
            return out
        if o.clipvalue > 0:
            return [tf.clip_by_value(g, -o.clipvalue, o.clipvalue) for g in grads]
        return grads

    def apply(self, grads, variables):
        tf = self.tf
        self.step.assign_add(1)
        t = tf.cast(self.step, self.dtype)
        c = lambda x: tf.constant(x, self.dtype)  # noqa: E731 - hyperparameters in the variables' dtype
        update = self._kernel if self.form == "kernels" else self._textbook
        for i, (g, var) in enumerate(zip(self.clip(grads), variables)):
            update(i, g, var, t, c)

    def _kernel(self, i, g, var, t, c):
        raw, o, m, v = self.tf.raw_ops, self.o, self.m[i], self.v[i]
        if o.name == "adam":
            powers = dict(beta1_power=c(o.beta_1) ** t, beta2_power=c(o.beta_2) ** t, lr=c(o.learning_rate),
                          beta1=c(o.beta_1), beta2=c(o.beta_2), epsilon=c(o.epsilon), grad=g)
            if o.amsgrad:
                raw.ResourceApplyAdamWithAmsgrad(var=var.handle, m=m.handle, v=v.handle, vhat=self.vmax[i].handle,
                                                 **powers)
            else:
                raw.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, **powers)
        elif o.name == "sgd":
            if o.momentum > 0:
                raw.ResourceApplyKerasMomentum(var=var.handle, accum=m.handle, lr=c(o.learning_rate), grad=g,
                                               momentum=c(o.momentum), use_nesterov=o.nesterov)
            else:
                raw.ResourceApplyGradientDescent(var=var.handle, alpha=c(o.learning_rate), delta=g)
        elif o.name == "rmsprop":
            raw.ResourceApplyRMSProp(var=var.handle, ms=v.handle, mom=m.handle, lr=c(o.learning_rate), rho=c(o.rho),
                                     momentum=c(o.momentum), epsilon=c(o.epsilon), grad=g)
        else:
            raw.ResourceApplyAdagradV2(var=var.handle, accum=v.handle, lr=c(o.learning_rate), epsilon=c(o.epsilon),
                                       grad=g)

    def _textbook(self, i, g, var, t, c):
        tf, o, m, v = self.tf, self.o, self.m[i], self.v[i]
        lr, eps = c(o.learning_rate), c(o.epsilon)
        if o.name == "adam":
            m.assign(c(o.beta_1) * m + (1 - c(o.beta_1)) * g)
            v.assign(c(o.beta_2) * v + (1 - c(o.beta_2)) * tf.square(g))
            second = v
            if o.amsgrad:
                self.vmax[i].assign(tf.maximum(self.vmax[i], v))
                second = self.vmax[i]
            m_hat, v_hat = m / (1 - c(o.beta_1) ** t), second / (1 - c(o.beta_2) ** t)
            var.assign_sub(lr * m_hat / (tf.sqrt(v_hat) + eps))
        elif o.name == "sgd":
            m.assign(c(o.momentum) * m + g)
            var.assign_sub(lr * (g + c(o.momentum) * m if o.nesterov else m))
        elif o.name == "rmsprop":
            v.assign(c(o.rho) * v + (1 - c(o.rho)) * tf.square(g))
            m.assign(c(o.momentum) * m + g / (tf.sqrt(v) + eps))
            var.assign_sub(lr * m)
        else:
            v.assign_add(tf.square(g))
            var.assign_sub(lr * g / (tf.sqrt(v) + eps))


def train_tensorflow(K, engine, run: RunConfig, ds: Dataset, x_train, y_train, x_test, emit, wait_for_init) -> dict:
    """The engine interface (core.engines): K and engine are unused, this loop builds without Keras."""
    import tensorflow as tf

    dtype = tf.float64 if run.numerics.dtype == "float64" else tf.float32
    seeding = seed_tensorflow(tf, run)
    m, classify = run.model, ds.task == "classification"
    init = Initializer(tf, run, dtype)
    names, variables, trainable = [], [], []

    def add(name, value, train=True):
        var = tf.Variable(value, dtype=dtype, trainable=train, name=name.replace("/", "_"))
        names.append(name)
        variables.append(var)
        if train:
            trainable.append(var)
        return var

    n_features = x_train.shape[1]
    scale = add("scale/w", init.normal((n_features,), 0.05, 999, False)) if m.scale_layer else None
    layers, fan_in = [], n_features
    for i, units in enumerate(m.hidden):
        kernel = add(f"dense_{i}/kernel", init.kernel(m.initializer, (fan_in, units), i))
        bias = add(f"dense_{i}/bias", tf.zeros(units, dtype))
        bn = None
        if m.batch_norm:
            bn = (add(f"bn_{i}/gamma", tf.ones(units, dtype)), add(f"bn_{i}/beta", tf.zeros(units, dtype)),
                  add(f"bn_{i}/moving_mean", tf.zeros(units, dtype), False),
                  add(f"bn_{i}/moving_variance", tf.ones(units, dtype), False))
        layers.append((kernel, bias, bn))
        fan_in = units
    n_out = ds.n_classes if classify else 1
    out_kernel = add("output/kernel", init.kernel(m.initializer, (fan_in, n_out), len(m.hidden)))
    out_bias = add("output/bias", tf.zeros(n_out, dtype))

    initial = wait_for_init()
    if initial is not None:
        for name, var in zip(names, variables):
            var.assign(np.asarray(initial[name]).astype(var.dtype.as_numpy_dtype))

    activation = getattr(tf.nn, m.activation) if m.activation != "sigmoid" else tf.sigmoid
    drop_seed = run.seeding.seed if run.seeding.policy == "explicit" else None

    def forward(x, training):
        h = x * scale if scale is not None else x
        for i, (kernel, bias, bn) in enumerate(layers):
            h = tf.matmul(h, kernel) + bias
            if bn is not None:
                gamma, beta, moving_mean, moving_var = bn
                if training:
                    mean, var = tf.nn.moments(h, axes=[0])
                    moving_mean.assign(moving_mean * BN_MOMENTUM + mean * (1 - BN_MOMENTUM))
                    moving_var.assign(moving_var * BN_MOMENTUM + var * (1 - BN_MOMENTUM))
                else:
                    mean, var = moving_mean, moving_var
                h = tf.nn.batch_normalization(h, mean, var, beta, gamma, BN_EPSILON)
            h = activation(h)
            if training and m.dropout > 0:
                h = tf.nn.dropout(h, rate=m.dropout, seed=None if drop_seed is None else drop_seed + 100 + i)
        return tf.matmul(h, out_kernel) + out_bias

    def loss_and_hits(x, y):
        out = forward(x, True)
        if classify:
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=out)
            hits = tf.cast(tf.equal(tf.argmax(out, axis=1, output_type=y.dtype), y), dtype)
            return tf.reduce_mean(losses), tf.reduce_sum(hits)
        err = y - out[:, 0]
        return tf.reduce_mean(tf.square(err)), tf.reduce_sum(tf.abs(err))

    optimizer = Optimizer(tf, run, trainable, dtype)
    from tensorflow.python.framework.config import is_op_determinism_enabled

    on_gpu = bool(tf.config.list_logical_devices("GPU"))
    jit = {"on": True, "off": False, "auto": on_gpu and not is_op_determinism_enabled()}[
        run.numerics.xla]

    @tf.function(jit_compile=jit)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss, hits = loss_and_hits(x, y)
        optimizer.apply(tape.gradient(loss, trainable), trainable)
        return loss, hits

    x_train, x_test = x_train.astype(dtype.as_numpy_dtype), x_test.astype(dtype.as_numpy_dtype)
    y_train = y_train.astype(np.int64 if classify else x_train.dtype)

    @tf.function(jit_compile=jit)
    def predict(x):
        out = forward(x, False)
        return tf.nn.softmax(out) if classify else out

    rec = Recording(names, emit, ds.y_test, ds.task, run.training.epochs)
    rec.initial([v.numpy() for v in variables], predict(x_test).numpy())
    t, n = run.training, len(x_train)
    orders = fixed_orders(n, t.epochs, t.shuffle_seed) if t.batch_order == "fixed" else None
    for epoch in range(t.epochs):
        if orders is not None:
            order = orders[epoch]
        elif t.batch_order == "framework":
            order = tf.random.shuffle(tf.range(n)).numpy()
        else:
            order = np.arange(n)
        loss_sum = hit_sum = 0.0
        for start in range(0, n, t.batch_size):
            idx = order[start:start + t.batch_size]
            loss, hits = train_step(x_train[idx], y_train[idx])
            loss_sum += float(loss) * len(idx)
            hit_sum += float(hits)
        if not rec.epoch_end(loss_sum / n, hit_sum / n, [v.numpy() for v in variables], predict(x_test).numpy()):
            break

    effective = {
        "seeding": seeding,
        "optimizer": {"form": run.engine.raw_optimizer, **{k: getattr(run.optimizer, k) for k in (
            "name", "learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "momentum", "nesterov", "rho",
            "initial_accumulator", "clipnorm", "clipvalue")}},
        "optimizer_class": "tf.raw_ops kernels" if run.engine.raw_optimizer == "kernels" else "textbook TF ops",
        "jit_compile": jit,
        "dtype_policy": dtype.name,
        "floatx": dtype.name,
        "fit": f"tf.function train step, {t.batch_order} batch order",
        "predict": "predict(x): the forward tf.function on the whole array at once",
    }
    return {"recording": rec, "effective": effective, "predict": lambda x: predict(x.astype(x_test.dtype)),
            "versions": {"tensorflow": tf.__version__}}
