"""The exported standalone script: one file that trains A and B of a pair the way the app does, bit for bit,
and imports nothing of Divergence Lab.

    standalone_script(pair) -> str      the script's text (SCRIPT_NAME is a good file name)

The script is built from one source: the pair's config (its pair.json, as the Reproduce page shows it) and
the functions an app worker runs for it, copied unchanged from `core` (the engine's training function, the
framework set-up, data loading, preprocessing, the recording), with whatever they use and nothing else:
`carried_code` follows the names each function uses to the definitions and imports of their modules. Around
them a little code of the script's own does what core/worker.py and the pool do for a run: set the
framework's environment, start one fresh process per model, hand A's initial weights to B, save and compare.

Run with no argument, the script starts itself once per model (`--model a`, `--model b`), because a
framework reads its environment (KERAS_BACKEND, TF_USE_LEGACY_KERAS, TF_ENABLE_ONEDNN_OPTS, ...) once, at
import, and keeps seeds, determinism and dtype policies process-wide, as the app's workers do. Each child
writes `a.npz` / `b.npz` into `--out DIR` (final weights under the app's 'layer/variable' names, plus
`test_predictions`); the parent prints max |A-B| per variable and whether A and B are bitwise equal.

Every pair that `core.factors.parse_pair` accepts can be exported, on every engine; what the app refuses
raises ConfigError here as well, and so does a CSV that cannot be read. Runs the app cannot repeat either
(no seeding, NumPy + TF seeds with a Keras engine, ...) are exported as they are, with a note in the
script's docstring. This module imports no framework.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any

from core import data as data_module
from core.batch import library_versions
from core.config import ConfigError, PairConfig, RunConfig
from core.engines import APP_ONLY_VARIABLES, FRAMEWORK_NAMES, engine, worker_env
from core.factors import factor, format_value, parse_pair

SCRIPT_NAME = "divergence_pair.py"
INIT_FILE = "a_initial_weights.npz"
# The modules whose code the script may carry, in the order it carries them (each after those it imports).
CARRIED_MODULES = ("core.config", "core.data", "core.preprocess", "core.compare", "core.budget", "core.recording",
                   "core.backends", "core.engine_keras", "core.engine_tf")
# What the script's own code calls (see SCRIPT_CODE); each engine's training function comes on top.
SCRIPT_CALLS = (("core.config", "pair_from_dict"), ("core.backends", "import_framework"),
                ("core.backends", "configure"), ("core.preprocess", "preprocess"),
                ("core.engine_keras", "keras_normalizer"), ("core.compare", "weights_digest"))
# How the script loads each kind of data set: the core.data functions that core.data.load runs for it, and the call.
LOADERS = {
    "series": (("_series",), "return _series(cfg)"),
    "csv": (("csv_frame_features", "split_features"),
            "import pandas as pd\n\nreturn split_features(cfg, *csv_frame_features(pd.read_csv(CSV_PATH), cfg.csv_target))"),
    "bundled": (("bundled_features", "split_features"), "return split_features(cfg, *bundled_features(cfg))"),
}


def standalone_script(pair: PairConfig) -> str:
    """The text of one standalone Python script that reproduces runs A and B of `pair`.

    Raises core.config.ConfigError for a pair the app would refuse or data it cannot load.
    """
    pair = parse_pair(pair.to_dict())  # the app's own validation, whatever built this PairConfig
    if pair.same_process:
        raise ConfigError("the standalone script trains A and B each in a fresh process; a pair built in one "
                          "process is the article's Example 1, whose code the Overview shows")
    ds = data_module.load(pair.data)  # a CSV that cannot be read is refused here, as the app refuses it
    runs = {"a": pair.a, "b": pair.b}
    engines = {run.engine.name: engine(run.engine.name) for run in runs.values()}
    kind = pair.data.dataset if pair.data.dataset in ("series", "csv") else "bundled"
    loaders, load_body = LOADERS[kind]
    roots = [*SCRIPT_CALLS, *(("core.data", name) for name in loaders),
             *(tuple(e.trainer.split(":")) for e in engines.values())]
    code = carried_code(roots)
    imports = code.imports | {"import argparse", "import json", "import os", "import subprocess", "import sys",
                              "import time", "from types import SimpleNamespace", "import numpy as np"}
    parts = [_docstring(pair, ds, runs), "", "from __future__ import annotations", "", *_import_lines(imports), "",
             *_settings(pair, runs), "", "", code.text, "", "",
             _script_code(engines, load_body), "", "",
             'if __name__ == "__main__":', "    sys.exit(main())", ""]
    return "\n".join(parts)


OPTIMIZER_CLASSES = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad"}


def same_process_code(pair: PairConfig) -> str:
    """What a pair built in one process does, in the article's words (the worker runs the app's equivalent)."""
    a, b = pair.a, pair.b
    seeding = {
        "numpy_tf": f"np.random.seed({a.seeding.seed})\ntf.random.set_seed({a.seeding.seed})",
        "keras": f"keras.utils.set_random_seed({a.seeding.seed})", "none": "# no seeding",
        "explicit": f"# explicit seeds ({a.seeding.seed} + i) on every initializer"}[a.seeding.policy]
    legacy = a.engine.name == "tf_keras"

    def layers(run: RunConfig) -> str:
        hidden = ", ".join(f'Dense({u}, activation="{run.model.activation}")' for u in run.model.hidden)
        return f"[Input(...), {hidden}, Dense(outputs)]"

    return "\n".join([
        "import numpy as np, tensorflow as tf" + ("" if legacy else ", keras"),
        *(["import tf_keras as keras  # TF_USE_LEGACY_KERAS=1: tf.keras is tf_keras too"] if legacy else []),
        "", seeding, "",
        f"model_a = keras.Sequential({layers(a)})",
        f"model_b = tf.keras.Sequential({layers(b)})  # the same process, right after A",
        f"model_a.compile(optimizer=keras.optimizers.{OPTIMIZER_CLASSES[a.optimizer.name]}(...), loss=...)",
        f"model_b.compile(optimizer=tf.keras.optimizers.{OPTIMIZER_CLASSES[b.optimizer.name]}(...), loss=...)",
        f"model_a.fit(x_train, y_train, epochs={a.training.epochs}, batch_size={a.training.batch_size})",
        f"model_b.fit(x_train, y_train, epochs={b.training.epochs}, batch_size={b.training.batch_size})",
    ])


def unlike_a_plain_script(run: RunConfig) -> list[str]:
    """Where this run's setup is not a plain script's (its framework's fit and predict, its own shuffle and thread
    defaults), each with its reason; the exported script sets the same. Factor values are the user's choice: these
    are the settings that look like the app's plumbing."""
    e, t, n = engine(run.engine.name), run.training, run.numerics
    out = []
    if t.batch_order != "framework":
        order = (f"batches in a NumPy permutation per epoch (seed {t.shuffle_seed}), the same on every engine"
                 if t.batch_order == "fixed" else "batches in the data's own order, unshuffled")
        out.append(f"{order}, where a plain fit shuffles with the framework's own generator")
    for path, threads in (("numerics.intra_threads", n.intra_threads), ("numerics.inter_threads", n.inter_threads)):
        if threads and path in e.honours:
            out.append(f"{factor(path).label.lower()}: {threads}, where a plain script leaves "
                       f"{FRAMEWORK_NAMES[e.framework]}'s default")
    return out


def pair_unlike_a_plain_script(pair: PairConfig) -> dict[str, list[str]]:
    """unlike_a_plain_script of A and B: what both have under "A and B", the rest under "A" and "B"; only those with
    any."""
    a, b = unlike_a_plain_script(pair.a), unlike_a_plain_script(pair.b)
    unlike = {"A and B": [item for item in a if item in b], "A": [item for item in a if item not in b],
              "B": [item for item in b if item not in a]}
    return {who: items for who, items in unlike.items() if items}


def not_reproducible(run: RunConfig) -> list[str]:
    """Why this run's numbers change from one fresh process to the next (empty when they do not)."""
    s, keras_engine = run.seeding, run.engine.name != "tensorflow"
    if s.policy == "none":
        return ["nothing is seeded"]
    reasons = []
    if s.policy == "numpy_tf" and keras_engine:
        reasons.append("np.random.seed + tf.random.set_seed leave the Keras initializers drawing from Python's random")
    if s.policy == "explicit":
        if run.model.scale_layer and keras_engine:
            reasons.append("the custom scale layer's add_weight(initializer='random_normal') has no seed")
        if run.training.batch_order == "framework":
            reasons.append("the framework's shuffle draws from TensorFlow's unseeded global stream")
    return reasons


def pair_not_reproducible(pair: PairConfig) -> list[str]:
    """Why A's or B's numbers change from one fresh process to the next (empty when neither does)."""
    return sorted({reason for run in (pair.a, pair.b) for reason in not_reproducible(run)})


def _lit(value: Any) -> str:
    """Python source for a config value, strings in double quotes like the code around them."""
    text = repr(value)
    if isinstance(value, str) and text.startswith("'") and '"' not in value:
        text = '"' + text[1:-1] + '"'  # repr chose single quotes only because the text has no single quote
    return text


def _wrap(line: str, width: int = 110) -> list[str]:
    """A long call split after top-level commas, continued under its first argument."""
    if len(line) <= width or "(" not in line:
        return [line]
    start, depth, quote, cuts = line.index("("), 0, "", []
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 1 and i > start:
            cuts.append(i + 1)
    pieces = [line[a:b].strip() for a, b in zip([0] + cuts, cuts + [len(line)])]
    pieces[0] = line[:cuts[0]].rstrip() if cuts else line
    lines, pad = [pieces[0]], " " * (start + 1)
    for piece in pieces[1:]:
        if len(lines[-1]) + 1 + len(piece) <= width:
            lines[-1] += " " + piece
        else:
            lines.append(pad + piece)
    return lines


# -- the code the script carries: core's own functions and what they use --------------------------------------


@dataclass
class Carried:
    text: str  # the definitions, module by module, each as it is in its source file
    imports: set[str] = field(default_factory=set)  # the import statements they need ("import numpy as np")
    names: dict[str, str] = field(default_factory=dict)  # name -> the module it comes from


def carried_code(roots: list[tuple[str, str]]) -> Carried:
    """The source of the (module, name) definitions in `roots` and of every module-level definition they use,
    followed name by name through their modules' globals and `from core.x import y` imports.

    Raises ValueError where the script could not carry them: two modules defining one name, a definition
    that imports from core inside its body, or one that uses a core module as a whole.
    """
    chosen: dict[str, set[str]] = {}
    carried, stack = Carried(""), list(roots)
    while stack:
        module, name = stack.pop()
        if name in chosen.get(module, ()):
            continue
        if carried.names.get(name, module) != module:
            raise ValueError(f"{name} is defined in both {carried.names[name]} and {module}")
        carried.names[name] = module
        chosen.setdefault(module, set()).add(name)
        index = _index(module)
        for used in _names_used(index.definitions[name], module):
            if used in index.definitions:
                stack.append((module, used))
                continue
            for source, original in index.imports.get(used, ()):
                if source.startswith("core"):
                    if original != used:
                        raise ValueError(f"{module}.{name} uses {used}, a core module or a renamed import")
                    stack.append((source, used))
                else:
                    carried.imports.add(_import_statement(source, original, used))
    unknown = set(chosen) - set(CARRIED_MODULES)
    if unknown:
        raise ValueError(f"the script would carry code of {', '.join(sorted(unknown))}; add it to CARRIED_MODULES")
    sections = []
    for module in CARRIED_MODULES:
        if module in chosen:
            index = _index(module)
            path = module.replace(".", "/") + ".py"
            nodes = sorted((index.definitions[n] for n in chosen[module]), key=lambda node: node.lineno)
            about = textwrap.fill(index.summary, 100, initial_indent="# ", subsequent_indent="# ")
            sections.append(f"# ---- from {path} ----\n{about}\n\n\n"
                            + "\n\n\n".join(_text(index.lines, node) for node in dict.fromkeys(nodes)))
    carried.text = "\n\n\n".join(sections)
    return carried


@dataclass
class _Index:
    lines: list[str]  # the module's source
    summary: str  # its docstring's first paragraph
    definitions: dict[str, ast.stmt]  # top-level name -> the def, class or assignment that binds it
    imports: dict[str, list[tuple[str, str | None]]]  # bound name -> [(module, imported name; None: `import m`)]


@functools.cache
def _index(module: str) -> _Index:
    source = inspect.getsource(importlib.import_module(module))
    tree = ast.parse(source)
    definitions, imports = {}, {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            definitions[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        definitions[name.id] = node
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imports.setdefault(alias.asname or alias.name.split(".")[0], []).append((alias.name, None))
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                imports.setdefault(alias.asname or alias.name, []).append((node.module, alias.name))
    summary = " ".join((ast.get_docstring(tree) or "").split("\n\n")[0].split())  # its first paragraph
    return _Index(source.split("\n"), summary, definitions, imports)


def _names_used(node: ast.stmt, module: str) -> list[str]:
    names = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.append(sub.id)
        elif isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("core"):
            raise ValueError(f"{module} imports from {sub.module} inside a definition the script carries")
    return list(dict.fromkeys(names))


def _import_statement(source: str, original: str | None, bound: str) -> str:
    if original is None:
        top = source.split(".")[0]
        return f"import {source}" if bound == top else f"import {source} as {bound}"
    return f"from {source} import {original}" + ("" if bound == original else f" as {bound}")


def _text(lines: list[str], node: ast.stmt) -> str:
    """A definition's source lines, with its decorators and the comment lines right above it."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
    while first > 0 and lines[first - 1].lstrip().startswith("#"):
        first -= 1
    return "\n".join(lines[first:node.end_lineno])


def _import_lines(statements: set[str]) -> list[str]:
    """Import statements grouped as PEP 8 has them (standard library, then the rest), `from` imports merged."""
    groups: dict[bool, dict[str, set[str]]] = {True: {}, False: {}}
    plain: dict[bool, set[str]] = {True: set(), False: set()}
    for statement in statements:
        root = statement.split()[1].split(".")[0]
        std = root in sys.stdlib_module_names
        if statement.startswith("from "):
            _, module, _, names = statement.split(" ", 3)
            groups[std].setdefault(module, set()).add(names)
        else:
            plain[std].add(statement)
    out = []
    for std in (True, False):
        block = sorted(plain[std], key=lambda line: line.split()[1]) + [
            f"from {module} import {', '.join(sorted(names))}" for module, names in sorted(groups[std].items())]
        out += block + ([""] if block and std else [])
    return out


# -- what the script says and sets up, around the carried code ------------------------------------------------


def _settings(pair: PairConfig, runs: dict[str, RunConfig]) -> list[str]:
    """The pair's config, the CSV's path, and the variables each model's framework reads at import."""
    lines = ["# The pair as Divergence Lab validated it: its pair.json (the Reproduce page shows the same).",
             f'PAIR_JSON = """\\\n{pair.to_json()}\n"""']
    if pair.data.dataset == "csv":
        lines += ["# The CSV the pair was trained on: point this at your copy of the file.",
                  f"CSV_PATH = {_lit(pair.data.csv_path)}"]
    lines += ["# Variables each model's framework reads once, when it is imported (None: unset), as the app sets",
              "# them for its worker (core/engines.py: worker_env).", "ENVIRONMENT = {"]
    for m, run in runs.items():
        lines += [f'    "{m}": {{', *(f"        {_lit(k)}: {_lit(v)}," for k, v in worker_env(run)
                                      if k not in APP_ONLY_VARIABLES), "    },"]
    return lines + ["}"]


def _script_code(engines: dict, load_body: str) -> str:
    entries = [f"    {_lit(e.name)}: SimpleNamespace(name={_lit(e.name)}, label={_lit(e.label)}, framework="
               f"{_lit(e.framework)}, keras={_lit(e.keras)}, train={e.trainer.split(':')[1]})," for e in engines.values()]
    return (SCRIPT_CODE.replace("@ENGINES@", "\n".join(line for entry in entries for line in _wrap(entry)))
            .replace("@LOAD@", textwrap.indent(load_body, "    ")).replace("@INIT_FILE@", INIT_FILE).strip("\n"))


def _docstring(pair: PairConfig, ds, runs: dict[str, RunConfig]) -> str:
    d, a = pair.data, pair.a
    missing = f", {d.missing_rate:.0%} of the inputs missing" if d.missing_rate else ""
    notes = [f"Data: {ds.description}{missing}.", f"A: {_describe(a)}."]
    if pair.b_differs:
        notes.append("B differs from A in:")
        for path, value in pair.b_differs:
            f = factor(path)
            notes.append(f"  - {f.label} ({path}): {format_value(path, a.get(path))} -> "
                         f"{format_value(path, value)}. {f.mechanism}")
    else:
        notes.append("B is set up exactly as A.")
    if pair.b_starts_from_a_init:
        notes.append("B starts from A's initial weights.")
    for m, run in runs.items():
        if reasons := not_reproducible(run):
            notes.append(f"Not repeatable: {m.upper()}'s numbers change from run to run ({'; '.join(reasons)}).")
    notes += [f"Unlike a plain script of its framework, {who} {'have' if who == 'A and B' else 'has'} "
              f"{'; '.join(items)}." for who, items in pair_unlike_a_plain_script(pair).items()]
    if any(run.numerics.xla == "auto" and engine(run.engine.name).framework == "tensorflow" for run in runs.values()):
        notes.append('XLA "auto" compiles only where a GPU is present: a GPU machine gives other numbers.')
    versions = library_versions()
    frameworks = {engine(run.engine.name).framework for run in runs.values()}
    packages = ["python", *(["tensorflow"] if "tensorflow" in frameworks else []),
                *(["jax", "jaxlib"] if "jax" in frameworks else []), *(["torch"] if "torch" in frameworks else []),
                "keras", *(["tf-keras"] if any(run.engine.name == "tf_keras" for run in runs.values()) else []),
                "numpy", "scikit-learn", *(["pandas"] if d.dataset == "csv" else [])]
    notes += ["", "Written for " + ", ".join(f"{k} {versions[k]}" for k in packages)
              + "; other versions (and other CPUs or GPUs) can give other numbers."]
    wrapped = [textwrap.fill(n, 100, subsequent_indent="    " if n.startswith("  -") else "",
                             break_on_hyphens=False) if n else "" for n in notes]
    return "\n".join([
        '"""A Divergence Lab pair as one plain script: trains model A and model B, then compares them.', "",
        f"    python {SCRIPT_NAME} [--out DIR]     train A and B, each in a fresh process, and compare",
        f"    python {SCRIPT_NAME} --model b       train one model only, in this process", "",
        "Each model writes its final weights (under the app's names, e.g. dense_0/kernel) and its test",
        "predictions to DIR/a.npz and DIR/b.npz. The training code below is Divergence Lab's own, copied",
        "unchanged from its core modules (each section says which); the pair's settings are PAIR_JSON.", "",
        *wrapped, '"""'])


def _describe(run: RunConfig) -> str:
    e = engine(run.engine.name)
    raw = f" ({run.engine.raw_optimizer} optimizer code)" if e.name == "tensorflow" else ""
    m, t = run.model, run.training
    return (f"{e.label}{raw}; {m.kind} {'-'.join(map(str, m.hidden))}, {m.activation}; {run.optimizer.name} "
            f"lr {format_value('optimizer.learning_rate', run.optimizer.learning_rate)}; {t.epochs} epochs of batch "
            f"{t.batch_size}, {t.batch_order} order; seeding {run.seeding.policy} {run.seeding.seed}; "
            f"{run.numerics.dtype}, XLA {run.numerics.xla}")


SCRIPT_CODE = """
# ---- the script's own code: one model per fresh process, as Divergence Lab's workers run them ----


# The engines A and B run, as Divergence Lab's registry (core/engines.py) describes them.
ENGINES = {
@ENGINES@
}


def set_environment(variables):
    for key, value in variables.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def load_data(cfg):
    \"\"\"The data set and its split, as the app loads it (core/data.py: load).\"\"\"
@LOAD@


def progress(model_name, out_dir, share):
    \"\"\"What a run reports while it trains (an app worker sends it to the page): each epoch is printed, and
    A's initial weights are saved for B when B starts from them.\"\"\"
    def emit(event):
        if event["type"] == "epoch":
            print(f"{model_name}: epoch {event['epoch']}: loss {event['loss']:.6g}, metric {event['metric']:.4g}")
        elif event["type"] == "init" and share and model_name == "a":
            path = os.path.join(out_dir, "@INIT_FILE@")
            with open(path + ".tmp", "wb") as f:
                np.savez(f, **event["weights"])
            os.replace(path + ".tmp", path)  # B never reads a half-written file

    return emit


def initial_weights(model_name, out_dir, share):
    \"\"\"What a run starts from instead of its own initial weights: for B, when B starts from A's, A's (B has
    built its own model first, as in the app, so that its later random draws match).\"\"\"
    def wait():
        if not share or model_name == "a":
            return None
        path = os.path.join(out_dir, "@INIT_FILE@")
        deadline = time.monotonic() + 600
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise SystemExit("A's initial weights never arrived")
            time.sleep(0.05)
        with np.load(path) as initial:
            return {name: initial[name] for name in initial.files}

    return wait


def train_one(model_name, out_dir):
    \"\"\"Train one model in this process, as an app worker does (core/worker.py: run_job), and save its final
    weights and test predictions.\"\"\"
    pair = pair_from_dict(json.loads(PAIR_JSON))
    run = pair.a if model_name == "a" else pair.b
    engine = ENGINES[run.engine.name]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # fewer TensorFlow log lines
    set_environment(ENVIRONMENT[model_name])  # before the framework is imported
    fw, K = import_framework(engine.framework)
    configure(fw, run)  # before its first op
    ds = load_data(pair.data)
    x_train, y_train, x_test, _ = preprocess(ds, run.preprocess, keras_normalizer(K))
    os.makedirs(out_dir, exist_ok=True)
    share = pair.b_starts_from_a_init
    trained = engine.train(K, engine, run, ds, x_train, y_train, x_test, progress(model_name, out_dir, share),
                           initial_weights(model_name, out_dir, share))
    record = trained["recording"]
    weights = dict(zip(record.names, record.snapshots[-1]))
    metric = "accuracy" if ds.task == "classification" else "mean abs error"
    print(f"{model_name}: test {metric} {record.history[-1]['test_metric']:.4g}")
    print(f"{model_name}: initial weights digest {weights_digest(dict(zip(record.names, record.snapshots[0])))}")
    print(f"{model_name}: final weights digest {weights_digest(weights)}")
    np.savez(os.path.join(out_dir, f"{model_name}.npz"), **weights, test_predictions=record.predictions[-1])


def train_both_and_compare(out_dir):
    \"\"\"Train A and B, each in a fresh Python process (a framework reads its settings at import and keeps its
    random state and numerics settings process-wide), then compare their final weights.\"\"\"
    os.makedirs(out_dir, exist_ok=True)
    stale = os.path.join(out_dir, "@INIT_FILE@")
    if os.path.exists(stale):
        os.remove(stale)  # B must wait for this run's A
    script = os.path.abspath(__file__)
    children = {m: subprocess.Popen([sys.executable, script, "--model", m, "--out", out_dir]) for m in ("a", "b")}
    if children["a"].wait() != 0:
        children["b"].kill()  # it may be waiting for A's initial weights
    if any([child.wait() != 0 for child in children.values()]):
        print("a training process failed", file=sys.stderr)
        return 1
    same = True
    with np.load(os.path.join(out_dir, "a.npz")) as a, np.load(os.path.join(out_dir, "b.npz")) as b:
        for name in a.files:
            if name not in b.files or a[name].shape != b[name].shape:
                print(f"{name:32} A and B differ in shape")
                same = False
                continue
            bitwise = a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes()
            gap = np.max(np.abs(a[name].astype(np.float64) - b[name].astype(np.float64)), initial=0.0)
            same = same and bitwise
            print(f"{name:32} max |A-B| {gap:.3g}{'  (bitwise equal)' if bitwise else ''}")
    print("A and B are bitwise equal" if same else "A and B differ")
    return 0


def main():
    parser = argparse.ArgumentParser(description="Train models A and B of a Divergence Lab pair, compare them.")
    parser.add_argument("--model", choices=["a", "b"], help="train this model only, in this process")
    parser.add_argument("--out", default=".", help="where a.npz and b.npz go (default: the current directory)")
    args = parser.parse_args()
    if args.model:
        train_one(args.model, args.out)
        return 0
    return train_both_and_compare(args.out)
"""
