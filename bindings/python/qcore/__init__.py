"""qcore: quantization of trained neural networks for small devices.

A thin layer over libqcore (C, loaded with cffi). Arrays are numpy arrays passed without copying:
pass the dtype and C-contiguous layout each function documents, or get a clear error.

    import numpy as np, qcore
    w = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    opts = qcore.QuantOptions(bits=4, granularity="channel", axis=0, scale_method="mse")
    scale, zero_point = qcore.choose_params(w, opts)
    q = qcore.quantize(w, scale, zero_point, opts)
    print(qcore.sqnr_db(w, qcore.dequantize(q, scale, zero_point, opts)))
"""
from ._errors import (CancelledError, DTypeError, FileError, FormatError, IntegerOverflowError, InternalError,
                      InvalidArgumentError, LayoutError, NumericError, OutOfMemoryError, QcoreError, ShapeError,
                      SingularError, UnsupportedError, VersionError)
from ._ffi import ffi, lib
from .core import Context, ProgressBar, arch_supported, best_arch, cpu_features, default_context, library_version
from .quant import (PackedInt4, QuantOptions, choose_params, dequantize, fake_quantize, kurtosis, max_over_rms,
                    pack_int4, quantize, relative_mse, sqnr_db, unpack_int4)
from .data import load_array, parse_array
from .ethosu import (EthosuConfig, EthosuLayer, EthosuModelLayer, EthosuRange, ethosu85_pack_bias, ethosu_config,
                     ethosu_decode, ethosu_encode, ethosu_pack_bias, ethosu_pack_layer, ethosu_pack_model,
                     ethosu_part_kernel_first, ethosu_quantise_scale, ethosu_reduced_quantise_scale, ethosu_reorder,
                     ethosu_reorder_encode)
from .ethosu import ethosu85_encode, ethosu85_fwd_decode, ethosu85_fwd_encode, ethosu85_part_kernel_first, ethosu85_reorder
from .accum import (AccumulatorReport, AccumulatorSimulation, accumulator_bits_a2q, accumulator_bits_datatype,
                    accumulator_bits_needed, input_range, simulate_accumulator, verify_accumulator)
from .gpxq import AxeStats, GpxqOptions, GpxqStats, QuantizedLayer, gpfq, optq, rtn
from .lq import (LqFit, LqOptions, bitserial_dots, bitserial_gemm, int8_gemm, lq_decode, lq_encode, lq_fit, lq_levels,
                 lq_pack, lq_refit_output, lq_assign_codes, plane_words)
from .model import Model, Node, ValueInfo, onnx_type_name
from .pipeline import LayerReport, Pipeline, Recipe
from .model_search import Candidate, ModelSearch
from .random import random_bits, random_normal, random_uniform
from .rotate import (CayleyOptions, CayleySGD, LinearRotationLoss, OutlierMetrics, cayley_minimize, cayley_run, fwht,
                     hadamard_factor, hadamard_matrix, outlier_metrics, random_hadamard, random_hadamard_matrix, random_orthogonal)
from .session import Session
from .lq_model import LqReplaceResult, lq_replace
from .search import Front, Search, SearchSpace, dp_front, hypervolume, proxy_output_error
from .job import quantize, quantize_model
from .lq import bitserial_interleave
from .lq import BitserialLayer

__version__ = library_version()


def __getattr__(name):
    if name == "plots":  # matplotlib is loaded only by a program that draws
        import importlib
        return importlib.import_module(".plots", __name__)
    raise AttributeError("module 'qcore' has no attribute %r" % name)
