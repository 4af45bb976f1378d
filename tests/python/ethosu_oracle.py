"""The Vela oracle of Ethos-U layer streams, shared by the layer and model packing tests: a layer assembled
exactly as Vela's weight_compressor.encode_weight_and_scale_tensor does (the loop over bricks and cores is
rewritten here, every piece it calls is Vela's: encode_weights with its Accelerator, encode_bias,
core_deinterleave)."""
import numpy as np
from ethosu.vela import weight_compressor
from ethosu.vela.api import NpuBlockTraversal
from ethosu.vela.architecture_features import Accelerator, ArchitectureFeatures


def vela_layer(ohwi, bias, scales, config, ofm_block_depth, depthwise, part_kernel, ifm_bits, dilation, step):
    """(stream, ranges) the way encode_weight_and_scale_tensor assembles them."""
    acc = Accelerator(config)
    ncores = ArchitectureFeatures.accelerator_configs[acc].cores
    hwio = np.transpose(ohwi, (1, 2, 3, 0))
    depth = ohwi.shape[0]
    step = step or depth
    offsets = list(range(0, depth, step)) + [depth]
    traversal = NpuBlockTraversal.PART_KERNEL_FIRST if part_kernel else NpuBlockTraversal.DEPTH_FIRST
    stream, ranges = bytearray(), []
    for d, end in zip(offsets[:-1], offsets[1:]):
        length = end - d
        brick = hwio[:, :, :, d:end]
        for core in range(min(ncores, length)):
            block = (ofm_block_depth + ncores - 1 - core) // ncores
            if block == 0:
                continue
            start = len(stream)
            entries = bytearray()
            for c in range(d + core, d + length, ncores):
                entries += weight_compressor.encode_bias(np.int64(bias[c]), *scales[c])
            stream += entries
            stream += bytes((16 - len(stream) % 16) % 16)
            weights_at = len(stream) - start
            sub, _ = weight_compressor.encode_weights(acc, weight_compressor.core_deinterleave(brick, core, ncores),
                                                      dilation, ifm_bits, block, depthwise, traversal)
            stream += sub
            ranges.append((d, core, start, len(entries), weights_at, len(sub)))
    return bytes(stream), ranges
