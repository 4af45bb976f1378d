/* Ethos-U figures in a pipeline run's report (recipe version 3): each quantized layer of the result packed
 * alone by qc_model_pack_ethosu's rules, so that one layer the NPU cannot take does not stop the others. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "pipeline_internal.h"

void qcp__free_reasons(char **reasons, size_t count)
{
    for (size_t i = 0; reasons && i < count; i++) free(reasons[i]);
    free(reasons);
}

/* An owned copy of the formatted reason, or NULL when out of memory. */
static char *reason(const char *format, ...) __attribute__((format(printf, 1, 2)));
static char *reason(const char *format, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, format);
    vsnprintf(text, sizeof text, format, ap);
    va_end(ap);
    return strdup(text);
}

/* Why layer i's weight is no packer layer though it was quantized: its stored integer type. */
static char *not_a_layer(const qc_layer_report *rep)
{
    if (rep->weight_bits <= 4)
        return reason("%d-bit weights are stored as INT4/UINT4; the Ethos-U packer takes int8/uint8 weights "
                      "(5..8 weight bits)", (int)rep->weight_bits);
    if (rep->weight_bits > 8)
        return reason("%d-bit weights are stored as INT16/UINT16; Ethos-U weights are 8-bit", (int)rep->weight_bits);
    return reason("the weight is not an int8/uint8 initializer read through DequantizeLinear");
}

/* Packs layer i's node of qmodel; fills the report's Ethos-U fields, or *why. */
static qc_status pack_layer(const qc_pipeline *p, size_t i, const qc_model *qmodel, const qc_ethosu_layer_options *o,
                            qc_layer_report *rep, char **why, const char *function)
{
    size_t node = 0;
    QCM_TRY(qcp__node_reading(qmodel, p->layers[i].weight, &node, function));
    qc_ethosu_model *packed = NULL;
    qc_status st = qcm__ethosu_pack_node(&packed, qmodel, node, o, function);
    if (st == QC_ERR_UNSUPPORTED || st == QC_ERR_NUMERIC || st == QC_ERR_FORMAT || st == QC_ERR_SHAPE) {
        /* the packer refuses this node: the others go on; the reason without the "function: " prefix */
        const char *message = qc_last_error();
        size_t n = strlen(function);
        if (strncmp(message, function, n) == 0 && strncmp(message + n, ": ", 2) == 0) message += n + 2;
        *why = reason("%s", message);
        return QC_OK;
    }
    if (st != QC_OK) return st;
    qc_ethosu_model_layer info;
    if (qc_ethosu_model_count(packed) == 1 && qc_ethosu_model_layer_info(packed, 0, &info, NULL) == QC_OK) {
        rep->ethosu_packed = 1;
        rep->ethosu_weight_bytes = info.weight_bytes;
        rep->ethosu_scale_bytes = info.scale_bytes;
        rep->ethosu_stream_bytes = info.stream_bytes;
    } else {
        *why = not_a_layer(rep);
    }
    qc_ethosu_model_free(packed);
    return QC_OK;
}

qc_status qcp__ethosu_reports(const qc_pipeline *p, const qc_recipe *rc, const qc_model *qmodel, qc_layer_report *reports,
                              char **reasons, const char *function)
{
    qc_ethosu_layer_options o;
    QCM_TRY(qc_ethosu_layer_options_init(&o, QC_ETHOSU_LAYER_OPTIONS_VERSION));
    o.config = rc->ethosu_config;
    for (size_t i = 0; i < p->num_layers; i++) {
        qc_layer_report *rep = &reports[i];
        if (!rep->quantized)
            reasons[i] = reason(rep->input_bits ? "the weight stays float (a layer format of 0 bits): it runs on the CPU"
                                                : "kept in float: it runs on the CPU");
        else if (rep->lq)
            reasons[i] = reason("LQ weights (%d-bit learned non-uniform levels, recipe lq_layers) are no integer grid the "
                                "Ethos-U packer takes: it runs on the CPU", (int)rep->weight_bits);
        else QCM_TRY(pack_layer(p, i, qmodel, &o, rep, &reasons[i], function));
        if (!rep->ethosu_packed && reasons[i] == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
        rep->ethosu_reason = reasons[i];
    }
    return QC_OK;
}
