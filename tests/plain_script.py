"""Plain scripts, as a user writes them: no Divergence Lab code, no thread settings, the framework's defaults.

    python tests/plain_script.py keras EPOCHS OUT.npz [fixed]   # Keras 3 on KERAS_BACKEND, or legacy tf.keras
                                                                # (Keras 2) when TF_USE_LEGACY_KERAS=1
    python tests/plain_script.py tensorflow EPOCHS OUT.npz      # raw TensorFlow: tf.Variable, GradientTape

The same training either way: scikit-learn's breast cancer data and split (20%, seed 0, stratified), standardised
in float32 with the training rows' mean and population std; an MLP 30-256-1024-2 with ReLU and softmax, SGD with
learning rate 0.01, batches of 32 (the last of 455 rows holds 7) in the framework's own shuffled order (`fixed`: a
NumPy permutation per epoch, seed 0, each fed to `fit` with shuffle=False), seed 0. Writes the initial weights
(initial_0, initial_1, ...) and the final weights (final_0, ...) in Keras's get_weights order, and the test set's
predictions (`predictions`).
"""

import sys

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

# Wide enough, with that last batch of 7, that on 2 cores TensorFlow's and PyTorch's sums change with their thread
# count (one thread against their default; measured on the installed versions).
HIDDEN = (256, 1024)
LEARNING_RATE = 0.01


def breast_cancer():
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    x_train, x_test = x_train.astype("float32"), x_test.astype("float32")
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std == 0, 1, std).astype("float32")
    return (x_train - mean) / std, y_train, (x_test - mean) / std


def keras_run(epochs: int, fixed: bool):
    import os

    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
        import tensorflow as tf

        keras = tf.keras  # Keras 2 (the tf_keras package) under TF_USE_LEGACY_KERAS=1
    else:
        import keras

    x_train, y_train, x_test = breast_cancer()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((30,)), *[keras.layers.Dense(units, activation="relu") for units in HIDDEN],
                              keras.layers.Dense(2, activation="softmax")])
    initial = model.get_weights()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE), loss="sparse_categorical_crossentropy")
    if fixed:
        rng = np.random.default_rng(0)
        for _ in range(epochs):
            order = rng.permutation(len(x_train))
            model.fit(x_train[order], y_train[order], epochs=1, batch_size=32, shuffle=False)
    else:
        model.fit(x_train, y_train, epochs=epochs, batch_size=32)
    return initial, model.get_weights(), model.predict(x_test)


def tensorflow_run(epochs: int):
    import tensorflow as tf

    x_train, y_train, x_test = breast_cancer()
    tf.random.set_seed(0)
    variables, fan_in = [], 30
    for units in (*HIDDEN, 2):
        limit = np.sqrt(6 / (fan_in + units))  # Glorot uniform, as Keras initialises a Dense kernel
        variables += [tf.Variable(tf.random.uniform((fan_in, units), -limit, limit)), tf.Variable(tf.zeros(units))]
        fan_in = units
    initial = [v.numpy() for v in variables]

    def logits(x):
        h = x
        for kernel, bias in zip(variables[0:-2:2], variables[1:-2:2]):
            h = tf.nn.relu(tf.matmul(h, kernel) + bias)
        return tf.matmul(h, variables[-2]) + variables[-1]

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits(x)))
        for variable, gradient in zip(variables, tape.gradient(loss, variables)):
            variable.assign_sub(LEARNING_RATE * gradient)
        return loss

    @tf.function
    def predict(x):
        return tf.nn.softmax(logits(x))

    for _ in range(epochs):
        order = tf.random.shuffle(tf.range(len(x_train))).numpy()
        for start in range(0, len(x_train), 32):
            batch = order[start:start + 32]
            train_step(x_train[batch], y_train[batch])
    return initial, [v.numpy() for v in variables], predict(x_test).numpy()


if __name__ == "__main__":
    epochs = int(sys.argv[2])
    if sys.argv[1] == "keras":
        initial, final, predictions = keras_run(epochs, fixed=sys.argv[4:] == ["fixed"])
    else:
        initial, final, predictions = tensorflow_run(epochs)
    np.savez(sys.argv[3], predictions=predictions, **{f"initial_{i}": w for i, w in enumerate(initial)},
             **{f"final_{i}": w for i, w in enumerate(final)})
