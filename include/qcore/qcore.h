/* qcore.h: the umbrella header of libqcore. Include this, link with `pkg-config --libs qcore`. */
#ifndef QCORE_H
#define QCORE_H

#include "qcore/qc_core.h"
#include "qcore/qc_tensor.h"
#include "qcore/qc_quant.h"
#include "qcore/qc_accum.h"
#include "qcore/qc_gpxq.h"
#include "qcore/qc_rotate.h"
#include "qcore/qc_lq.h"
#include "qcore/qc_kernels.h"
#include "qcore/qc_ethosu.h"
#include "qcore/qc_search.h"

#endif
