"""ONNX models: load, inspect and save through libqcore-onnx (see include/qcore/qc_model.h)."""
import os
from collections import namedtuple

import numpy as np

from ._errors import check
from ._ffi import ffi, onnx_lib

ValueInfo = namedtuple("ValueInfo", "name elem_type shape")
ValueInfo.__doc__ = """A graph input or output: ONNX element type name and shape (ints; strings for
symbolic dimensions; None for unknown ones; shape None when the rank is unknown)."""
Node = namedtuple("Node", "name op_type domain inputs outputs")

# ONNX element types with a numpy equivalent of the same layout.
_NUMPY_TYPES = {
    "FLOAT": np.float32, "UINT8": np.uint8, "INT8": np.int8, "UINT16": np.uint16, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_, "FLOAT16": np.float16, "DOUBLE": np.float64,
    "UINT32": np.uint32, "UINT64": np.uint64, "COMPLEX64": np.complex64, "COMPLEX128": np.complex128,
}


class InitializerArray(np.ndarray):
    """A read-only numpy view of an initializer's bytes; it keeps its Model alive."""

    _owner = None

    def __array_finalize__(self, obj):
        self._owner = getattr(obj, "_owner", None)


def onnx_type_name(elem_type):
    """'FLOAT', 'INT4', ... for an ONNX TensorProto.DataType value."""
    return ffi.string(onnx_lib.qc_onnx_type_string(elem_type)).decode()


def _text(p):
    return ffi.string(p).decode("utf-8", "replace") if p != ffi.NULL else ""


class Model:
    """A parsed ONNX model. Model(path) loads a file (external data next to it is memory-mapped);
    Model.from_bytes(data, external_dir=None) parses bytes in memory."""

    def __init__(self, path=None, _handle=None):
        if _handle is None:
            if path is None:
                raise TypeError("qcore.Model: give a path, or use Model.from_bytes")
            out = ffi.new("qc_model **")
            check(onnx_lib.qc_model_load(out, os.fsencode(path)))
            _handle = out[0]
        self._m = ffi.gc(_handle, onnx_lib.qc_model_free)

    @classmethod
    def from_bytes(cls, data, external_dir=None):
        out = ffi.new("qc_model **")
        directory = os.fsencode(external_dir) if external_dir is not None else ffi.NULL
        check(onnx_lib.qc_model_load_memory(out, ffi.from_buffer(data), len(data), directory))
        return cls(_handle=out[0])

    def save(self, path, external_threshold=0, external_file=None):
        """Writes the model atomically; initializers of at least `external_threshold` bytes (0: none) go
        to `external_file` (default '<file name>.data') in the same folder."""
        opts = ffi.new("qc_model_save_options *")
        opts.version = onnx_lib.QC_MODEL_SAVE_OPTIONS_VERSION
        opts.external_threshold = external_threshold
        keep = ffi.new("char[]", os.fsencode(external_file)) if external_file is not None else ffi.NULL
        opts.external_file = keep
        check(onnx_lib.qc_model_save(self._m, os.fsencode(path), opts))

    def _count(self, kind):
        return onnx_lib.qc_model_count(self._m, kind)

    @property
    def ir_version(self):
        value = ffi.new("int64_t *")
        check(onnx_lib.qc_model_header(self._m, value, ffi.NULL, ffi.NULL))
        return value[0]

    @property
    def producer(self):
        """(producer_name, producer_version)."""
        name, version = ffi.new("const char **"), ffi.new("const char **")
        check(onnx_lib.qc_model_header(self._m, ffi.NULL, name, version))
        return _text(name[0]), _text(version[0])

    @property
    def opsets(self):
        """{domain: version}; '' is the default ONNX domain."""
        result = {}
        for i in range(self._count(onnx_lib.QC_MODEL_OPSETS)):
            domain, version = ffi.new("const char **"), ffi.new("int64_t *")
            check(onnx_lib.qc_model_opset(self._m, i, domain, version))
            result[_text(domain[0])] = version[0]
        return result

    @property
    def metadata(self):
        result = {}
        for i in range(self._count(onnx_lib.QC_MODEL_METADATA)):
            key, value = ffi.new("const char **"), ffi.new("const char **")
            check(onnx_lib.qc_model_metadata(self._m, i, key, value))
            result[_text(key[0])] = _text(value[0])
        return result

    def _values(self, kind, getter):
        values = []
        for i in range(self._count(kind)):
            info = ffi.new("qc_value_info *")
            check(getter(self._m, i, info))
            shape = None
            if info.ndim >= 0:
                shape = tuple(_text(info.dim_params[d]) if info.dim_params[d] != ffi.NULL
                              else (info.dims[d] if info.dims[d] >= 0 else None) for d in range(info.ndim))
            values.append(ValueInfo(_text(info.name), onnx_type_name(info.elem_type), shape))
        return values

    @property
    def inputs(self):
        """Graph inputs that are not initializers."""
        return self._values(onnx_lib.QC_MODEL_INPUTS, onnx_lib.qc_model_input)

    @property
    def outputs(self):
        return self._values(onnx_lib.QC_MODEL_OUTPUTS, onnx_lib.qc_model_output)

    @property
    def nodes(self):
        nodes = []
        for i in range(self._count(onnx_lib.QC_MODEL_NODES)):
            n = ffi.new("qc_node_info *")
            check(onnx_lib.qc_model_node(self._m, i, n))
            nodes.append(Node(_text(n.name), _text(n.op_type), _text(n.domain),
                              [_text(n.inputs[k]) for k in range(n.num_inputs)],
                              [_text(n.outputs[k]) for k in range(n.num_outputs)]))
        return nodes

    def initializer_names(self):
        names = []
        for i in range(self._count(onnx_lib.QC_MODEL_INITIALIZERS)):
            info = ffi.new("qc_initializer_info *")
            check(onnx_lib.qc_model_initializer(self._m, i, info))
            names.append(_text(info.name))
        return names

    def initializer(self, name):
        """(ONNX type name, shape, data): data is a read-only numpy view without copy for types numpy
        has; for 4-bit and other packed types, the raw bytes as a uint8 array (ONNX layout)."""
        index = ffi.new("size_t *")
        check(onnx_lib.qc_model_find_initializer(self._m, name.encode(), index))
        info = ffi.new("qc_initializer_info *")
        check(onnx_lib.qc_model_initializer(self._m, index[0], info))
        type_name = onnx_type_name(info.elem_type)
        shape = tuple(info.dims[d] for d in range(info.ndim))
        if info.data == ffi.NULL:
            raw = np.empty(0, np.uint8)
        else:
            raw = np.frombuffer(ffi.buffer(info.data, info.nbytes), np.uint8)
        numpy_type = _NUMPY_TYPES.get(type_name)
        data = raw.view(numpy_type).reshape(shape) if numpy_type is not None else raw
        data = data.view(InitializerArray)
        data._owner = self
        data.flags.writeable = False
        return type_name, shape, data


_ATTRIBUTE_KINDS = {float: "QC_ATTRIBUTE_FLOAT", int: "QC_ATTRIBUTE_INT", str: "QC_ATTRIBUTE_STRING"}
_ONNX_TYPES = {np.dtype(v): k for k, v in _NUMPY_TYPES.items()}


def _onnx_type_code(name):
    for code in range(64):
        if onnx_type_name(code) == name:
            return code
    raise ValueError("unknown ONNX element type %r" % name)


def _raw(array_or_packed):
    """(ONNX type name, shape, bytes) of a numpy array or a PackedInt4."""
    from .quant import PackedInt4
    if isinstance(array_or_packed, PackedInt4):
        return ("INT4" if array_or_packed.signed else "UINT4", tuple(array_or_packed.shape),
                np.ascontiguousarray(array_or_packed.data))
    array = np.ascontiguousarray(array_or_packed)
    if array.dtype not in _ONNX_TYPES:
        raise TypeError("qcore.Model: arrays of dtype %s have no ONNX type" % array.dtype)
    return _ONNX_TYPES[array.dtype], array.shape, array


class _Editing:
    """Model editing methods (mixed into Model)."""

    def _tensor_call(self, function, name, value):
        type_name, shape, data = _raw(value)
        dims = ffi.new("int64_t[]", list(shape) or [0])
        check(function(self._m, name.encode(), _onnx_type_code(type_name), len(shape), dims,
                       ffi.from_buffer(data), data.nbytes))

    def set_initializer(self, name, value):
        """Replaces initializer `name` by `value` (numpy array or PackedInt4): type, shape and data."""
        self._tensor_call(onnx_lib.qc_model_set_initializer, name, value)

    def add_initializer(self, name, value):
        self._tensor_call(onnx_lib.qc_model_add_initializer, name, value)

    def add_node(self, op_type, inputs, outputs, name="", domain="", **attributes):
        """Appends a node; attributes are ints, floats, strings or lists of ints or floats."""
        keep = [ffi.new("char[]", s.encode()) for s in list(inputs) + list(outputs)]
        ins = ffi.new("const char *[]", keep[:len(inputs)] or [ffi.NULL])
        outs = ffi.new("const char *[]", keep[len(inputs):] or [ffi.NULL])
        index = ffi.new("size_t *")
        check(onnx_lib.qc_model_add_node(self._m, index, op_type.encode(), domain.encode(), name.encode(),
                                         len(inputs), ins, len(outputs), outs))
        for key, value in attributes.items():
            self.set_attribute(index[0], key, value)
        return index[0]

    def set_attribute(self, node, name, value):
        if isinstance(value, (list, tuple)):
            floats = any(isinstance(v, float) for v in value)
            kind = onnx_lib.QC_ATTRIBUTE_FLOATS if floats else onnx_lib.QC_ATTRIBUTE_INTS
            data = ffi.new("float[]" if floats else "int64_t[]", list(value) or [0])
            count = len(value)
        elif isinstance(value, str):
            kind, data, count = onnx_lib.QC_ATTRIBUTE_STRING, ffi.new("char[]", value.encode()), len(value.encode())
        elif isinstance(value, float):
            kind, data, count = onnx_lib.QC_ATTRIBUTE_FLOAT, ffi.new("float[]", [value]), 1
        else:
            kind, data, count = onnx_lib.QC_ATTRIBUTE_INT, ffi.new("int64_t[]", [int(value)]), 1
        check(onnx_lib.qc_model_set_attribute(self._m, node, name.encode(), kind, data, count))

    def require_opset(self, version, domain=""):
        check(onnx_lib.qc_model_require_opset(self._m, domain.encode(), version))

    def insert_qdq(self, name, scale, zero_point, opts, ctx=None):
        """Quantizes value `name` QDQ-style with `opts` (a QuantOptions) and parameters from
        qcore.choose_params (zero_point may be None for symmetric grids)."""
        from .core import default_context
        from ._tensor import as_array, view
        function = "qcore.Model.insert_qdq"
        scale = as_array(np.asarray(scale, np.float32) if np.isscalar(scale) else scale, "scale", [np.float32], function)
        st, _sb = view(scale)
        zt, _zb = (ffi.NULL, None) if zero_point is None else view(as_array(zero_point, "zero_point", [np.int32], function))
        ctx = ctx if ctx is not None else default_context()
        check(onnx_lib.qc_model_insert_qdq(self._m, ctx._ctx, name.encode(), st, zt, opts.to_c(function)))

    def sort(self):
        check(onnx_lib.qc_model_sort(self._m))

    def remove_dead(self):
        """Removes dead nodes and unused initializers; returns (nodes, initializers) removed."""
        nodes, inits = ffi.new("size_t *"), ffi.new("size_t *")
        check(onnx_lib.qc_model_remove_dead(self._m, nodes, inits))
        return nodes[0], inits[0]


class _Fusing:
    """Rotation and normalization fusion (mixed into Model); see qc_model.h. Layers are named by their
    MatMul or Gemm node; r is a float32 or float64 orthogonal matrix (max |R^T R - I| <= tolerance)."""

    def _rotation_call(self, function, c_function, node, r, *rest):
        from ._tensor import as_array, view
        rt, _keep = view(as_array(r, "r", [np.float32, np.float64], function))
        check(c_function(self._m, node.encode(), rt, *rest), function)

    def fold_norm(self, node):
        """Moves the scale (and LayerNormalization's shift) of normalization `node` into the linear
        layers reading its output; the node keeps scale 1 and shift 0."""
        check(onnx_lib.qc_model_fold_norm(self._m, node.encode()), "qcore.Model.fold_norm")

    def rotate_input(self, node, r, tolerance=1e-4):
        """Rotates layer `node`'s input side by r [in, in] (W <- r^T W, x <- x r); returns True when x r
        runs online as an inserted MatMul, False when it was folded into the producing layer."""
        online = ffi.new("int *")
        self._rotation_call("qcore.Model.rotate_input", onnx_lib.qc_model_rotate_input, node, r, tolerance, online)
        return bool(online[0])

    def rotate_output(self, node, r, tolerance=1e-4):
        """Rotates layer `node`'s output side by r [out, out] (W <- W r, b <- b r) and its readers' inputs."""
        self._rotation_call("qcore.Model.rotate_output", onnx_lib.qc_model_rotate_output, node, r, tolerance)

    def rotate_heads(self, node, r, tolerance=1e-4):
        """Per-head rotations of the attention whose output projection is `node`: r [heads, d, d] (or
        [d, d] for every head) on V's output side and O's input side."""
        self._rotation_call("qcore.Model.rotate_heads", onnx_lib.qc_model_rotate_heads, node, r, tolerance)

    def linear_layers(self):
        """Names of the MatMul and Gemm nodes whose second input is a FLOAT matrix initializer, in graph
        order: the layers the rotation transforms accept (subject to their other conditions)."""
        names = set(self.initializer_names())
        layers = []
        for n in self.nodes:
            if n.op_type in ("MatMul", "Gemm") and not n.domain and len(n.inputs) >= 2 and n.inputs[1] in names:
                type_name, shape, _ = self.initializer(n.inputs[1])
                if type_name == "FLOAT" and len(shape) == 2:
                    layers.append(n.name)
        return layers


for _mixin in (_Editing, _Fusing):
    for _name, _member in vars(_mixin).items():
        if not _name.startswith("__"):
            setattr(Model, _name, _member)
