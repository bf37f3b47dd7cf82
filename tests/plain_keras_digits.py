"""Plain Keras 3, no Divergence Lab code: the default scenario written as a user would.

digits, scikit-learn split (20%, seed 0, stratified), float32 standardisation with the
population std, MLP 64-32-10, Adam(1e-3), batch 32, a NumPy permutation per epoch
(seed 0) fed to fit with shuffle=False, keras.utils.set_random_seed(0).

    python tests/plain_keras_digits.py EPOCHS OUT.npz

writes the final weights (arr_0, arr_1, ... in get_weights order) and prints the
seconds spent in fit.
"""

import sys
import time

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

epochs, out = int(sys.argv[1]), sys.argv[2]
x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
x_train = x_train.astype("float32")
std = x_train.std(axis=0)
x_train = (x_train - x_train.mean(axis=0)) / np.where(std == 0, 1, std)
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
started = time.perf_counter()
for epoch in range(epochs):
    order = rng.permutation(len(x_train))
    model.fit(x_train[order], y_train[order], batch_size=32, epochs=1, shuffle=False, verbose=0)
print(f"fit_s: {time.perf_counter() - started}")
np.savez(out, *model.get_weights())
