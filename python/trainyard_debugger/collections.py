"""Collections: named groups of tensors with their own save and reduction configs (spec §2.1).

Sets and dicts here are built in the same order as smdebug builds them, so that the order of
written records and of the collections JSON matches smdebug's under the same PYTHONHASHSEED.
Not thread-safe.
"""
import json
import os


class CollectionKeys:
    DEFAULT = "default"
    ALL = "all"
    INPUTS = "inputs"
    OUTPUTS = "outputs"
    WEIGHTS = "weights"
    GRADIENTS = "gradients"
    LOSSES = "losses"
    BIASES = "biases"
    LAYERS = "layers"
    SM_METRICS = "sm_metrics"
    OPTIMIZER_VARIABLES = "optimizer_variables"
    METRICS = "metrics"


SCALAR_COLLECTIONS = {CollectionKeys.LOSSES, CollectionKeys.METRICS, "feature_importance",
                      "average_shap", CollectionKeys.SM_METRICS}
NON_REDUCTION_COLLECTIONS = SCALAR_COLLECTIONS.union({"tensorflow_summaries"})
# Same literal order as smdebug's constant: its iteration order decides the JSON key order.
DEFAULT_PYTORCH_COLLECTIONS = {
    CollectionKeys.ALL,
    CollectionKeys.DEFAULT,
    CollectionKeys.WEIGHTS,
    CollectionKeys.BIASES,
    CollectionKeys.GRADIENTS,
    CollectionKeys.LOSSES,
}
# Our addition: "inputs"/"outputs" with no regex and no modules (smdebug refuses them) match
# every module's inputs/outputs.
_IMPLICIT_REGEX = {CollectionKeys.INPUTS: r"_input_\d+$", CollectionKeys.OUTPUTS: r"_output_\d+$"}


class Collection:
    def __init__(self, name, include_regex=None, tensor_names=None, reduction_config=None,
                 save_config=None, save_histogram=True):
        self.name = name
        self.include_regex = include_regex if include_regex is not None else []
        self.tensor_names = set(tensor_names or [])
        self.reduction_config = reduction_config
        self._save_config = None
        self.save_config = save_config
        self.save_histogram = save_histogram
        self._modules = {}

    @property
    def save_config(self):
        return self._save_config

    @save_config.setter
    def save_config(self, value):
        from .config import SaveConfig
        if value is None or isinstance(value, SaveConfig):
            self._save_config = value
        elif isinstance(value, dict):
            self._save_config = SaveConfig(mode_save_configs=dict(value))
        else:
            raise TypeError("save_config must be a SaveConfig or a dict of ModeKeys to SaveConfigMode")

    def include(self, t):
        if isinstance(t, list):
            for x in t:
                self.include(x)
        elif isinstance(t, str):
            self.include_regex.append(t)
        else:
            raise TypeError("can only include str or list")

    def add_module_tensors(self, module, inputs=False, outputs=True):
        self._modules[module] = (inputs, outputs)

    @property
    def modules(self):
        return self._modules

    def add_tensor_name(self, name):
        self.tensor_names.add(name)

    def has_tensor_name(self, name):
        return name in self.tensor_names

    def to_json_dict(self):
        return {
            "name": self.name,
            "include_regex": self.include_regex,
            "tensor_names": sorted(self.tensor_names),
            "reduction_config": self.reduction_config.to_json_dict() if self.reduction_config else None,
            "save_config": self.save_config.to_json_dict() if self.save_config else None,
            "save_histogram": self.save_histogram,
        }

    def __hash__(self):
        return hash(self.name)

    def __eq__(self, other):
        if not isinstance(other, Collection):
            return NotImplemented
        return self is other or self.to_json_dict() == other.to_json_dict()

    def __repr__(self):
        return "<Collection %s>" % self.name


class CollectionManager:
    def __init__(self):
        self.collections = {}
        self.num_workers = 1
        for c in DEFAULT_PYTORCH_COLLECTIONS:
            self.get(c)
        self.get(CollectionKeys.WEIGHTS).include("^(?!gradient).*weight")
        self.get(CollectionKeys.BIASES).include("^(?!gradient).*bias")
        self.get(CollectionKeys.GRADIENTS).include("^gradient")
        self.get(CollectionKeys.LOSSES).include("[Ll]oss_(?!input).*output")

    def get(self, name, create=True):
        if name not in self.collections:
            if not create:
                raise KeyError("collection %s has not been created" % name)
            self.collections[name] = Collection(name)
        return self.collections[name]

    def add(self, coll):
        if isinstance(coll, str):
            self.get(coll)
        elif isinstance(coll, Collection):
            self.collections[coll.name] = coll
        else:
            raise TypeError("add() takes a Collection or a name")

    def to_json(self):
        return json.dumps({"collections": {n: c.to_json_dict() for n, c in self.collections.items()},
                           "_meta": {"num_workers": self.num_workers}})

    def export(self, out_dir, filename):
        d = os.path.join(out_dir, "collections", "000000000")
        write_atomically(os.path.join(d, filename), self.to_json().encode())


def write_atomically(path, data):
    """<path>.tmp then rename: a reader never sees a partial file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
