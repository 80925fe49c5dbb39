"""The one resolver of models: a reference (file, ``builtin:``, ``store:``) -> a `LoadedModel`.

What a model does (its task), its labels and its preprocessing come from its model card or bundle
manifest, never from the shapes of its outputs; a caller that needs a task says so and a model
declared for another task is refused. The model store is passed in by whoever owns it (the service),
so this floor knows nothing of bundles: any object with ``current(name)`` returning an installed
version (``manifest``, ``choose_variant(backend)``) will do.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edgert.backends.loader import load
from edgert.core.errors import ConfigError
from edgert.core.model_files import identify
from edgert.models.cards import read_card
from edgert.models.loaded import LoadedModel
from edgert.models.reference import model_path, store_model_name
from edgert.models.tasks import task_name

#: The card's input-spec options each kind of file takes: .rknn files do not say their input; an
#: .onnx model with dynamic axes needs a fixed shape (its dtype is in the file).
_CARD_OPTIONS = {"rknn": ("input_shape", "input_dtype"), "onnx": ("input_shape",)}


@dataclass(frozen=True)
class ModelInfo:
    """What a reference says about its model before it is loaded.

    Attributes:
        path: The model file (for ``store:``, the variant this device runs), or None when unknown.
        name, version: From the card or manifest (the file stem and "" when they do not say).
        task: Declared task, or None.
        labels: Class names from the card or manifest (``()`` when none).
        preprocess: `Preprocessor` arguments from the card or manifest.
        options: Backend options the card or bundle variant adds (an .rknn input spec, ...).
        backend: The backend the variant names ("auto" for plain files).
        decoder: Output decoder settings from the card or manifest (``{}`` when none).
    """

    path: object
    name: str
    version: str
    task: str | None
    labels: tuple
    preprocess: dict
    options: dict
    backend: str = "auto"
    decoder: dict = field(default_factory=dict)


def describe(ref, *, store=None, backend: str = "auto") -> ModelInfo:
    """Read what a reference declares, without loading it.

    Raises:
        ConfigError: a ``builtin:`` name that does not exist, a ``store:`` model with no store or no
            installed version. ModelError: an unreadable card. BundleError: no variant for this device.
    """
    name = store_model_name(ref)
    if name is not None:
        return _describe_installed(_current(store, name, ref), backend)
    path = model_path(ref)
    card = read_card(path)
    taken = _CARD_OPTIONS.get(identify(path).kind, ()) if card.input_spec else ()
    options = {k: v for k, v in card.input_spec.items() if k in taken}
    return ModelInfo(path, card.name, card.version, card.task, card.labels, dict(card.preprocess), options,
                     decoder=dict(card.decoder))


def describe_installed(installed, backend: str = "auto") -> ModelInfo:
    """What an installed bundle version declares, for the variant this device runs."""
    return _describe_installed(installed, backend)


def _describe_installed(installed, backend: str) -> ModelInfo:
    variant, path = installed.choose_variant(backend)
    m = installed.manifest
    return ModelInfo(path, m.name, m.version, task_name(m.task, f"{m.name} {m.version}: task"), tuple(m.labels),
                     m.input.preprocess_kwargs(), dict(variant.options), variant.backend, dict(m.decoder))


def _current(store, name: str, ref):
    if store is None:
        raise ConfigError(f"model: {ref!r} needs the model store")
    installed = store.current(name)
    if installed is None:
        raise ConfigError(f"model: no version of {name!r} is installed in {store.root}; "
                          f"install one with `edgert model install BUNDLE`")
    return installed


def resolve(ref, task: str | None = None, *, backend: str = "auto", options: dict | None = None,
            labels=None, name: str | None = None, version: str | None = None, preprocess: dict | None = None,
            store=None) -> LoadedModel:
    """Load the model a reference names, with its task, labels and preprocessing.

    Args:
        ref: A model file, ``builtin:<name>`` or ``store:<name>`` (needs `store`).
        task: The task the caller needs; a model declared for another one is refused.
        backend: "auto" or a backend key (for ``store:``, "auto" takes the variant the device runs best).
        options: Backend options, over those of the card or bundle variant.
        labels, name, version: Overrides of the card or manifest (config file settings).
        preprocess: `Preprocessor` arguments over those of the card or manifest.
        store: The model store, for ``store:`` references.

    Raises:
        ConfigError: wrong task, labels that do not fit a classifier's outputs, a reference that
            names nothing. ModelError, BackendUnavailable: as `edgert.load`.
    """
    info = describe(ref, store=store, backend=backend)
    return load_described(info, task, backend=backend, options=options, labels=labels, name=name, version=version,
                          preprocess=preprocess)


def resolve_installed(installed, task: str | None = None, backend: str = "auto", options: dict | None = None,
                      **overrides) -> LoadedModel:
    """`resolve` for an installed bundle version (the store's current one, or one about to be)."""
    return load_described(describe_installed(installed, backend), task, backend=backend, options=options,
                          **overrides)


def resolve_config(config, task: str | None = None, store=None) -> LoadedModel:
    """`resolve` for a `edgert.models.config.ModelConfig` section.

    A ``store:`` model is described by its bundle's manifest alone: the section's labels, name,
    version and preprocess overrides apply to model files (a version that is not the bundle's would
    make every poll see a "new" version, and a swap would drop them).
    """
    if store_model_name(config.path) is not None:
        return resolve(config.path, task, backend=config.backend, options=config.options, store=store)
    return resolve(config.path, task, backend=config.backend, options=config.options, labels=config.labels,
                   name=config.name, version=config.version, preprocess=config.preprocess.arguments(), store=store)


def load_described(info: ModelInfo, task: str | None = None, *, backend: str = "auto", options: dict | None = None,
                   labels=None, name: str | None = None, version: str | None = None,
                   preprocess: dict | None = None) -> LoadedModel:
    """Load what `describe` found and check it against the caller's task and labels."""
    task = task_name(task)
    where = f"{info.name} {info.version}".strip()
    if task is not None and info.task is not None and task != info.task:
        raise ConfigError(f"model {where}: declared a {info.task} model, but a {task} model is needed here")
    task = info.task or task
    chosen = info.backend if backend == "auto" else backend
    model = load(info.path, backend=chosen, **{**info.options, **(options or {})})
    try:
        labels = tuple(labels) if labels is not None else tuple(info.labels)
        if task == "classify":
            labels = _classifier_labels(model, labels, where)
    except BaseException:
        model.close()
        raise
    return LoadedModel(model, name or info.name, version or info.version, labels,
                       {**info.preprocess, **(preprocess or {})}, task, decoder=dict(info.decoder))


def _classifier_labels(model, labels: tuple, where: str) -> tuple:
    classes = model.outputs[0].shape[-1]
    if labels and len(labels) != classes:
        raise ConfigError(f"model {where}: {len(labels)} labels for a model with {classes} classes")
    return labels or tuple(str(i) for i in range(classes))


def model_loader(store=None):
    """A ``load_model(config, task=None, check=None, at_start=False)`` for an app's context.

    It resolves a `ModelConfig` (``store:`` references in `store`) and then calls ``check(entry)``,
    which raises when the app cannot use the model (closing it). The service wraps it to fall back
    to the previous store version at start (`edgert.service.models`).
    """
    def load_model(config, task=None, check=None, at_start=False):
        entry = resolve_config(config, task, store)
        if check is not None:
            try:
                check(entry)
            except BaseException:
                entry.model.close()
                raise
        return entry

    return load_model
