/* The Ethos-U55/U65 configurations: MACs, cores and micro-block depths (Vela's architecture_features). */
#include "core/error.h"
#include "qcore/qc_ethosu.h"

typedef struct config_row {
    const char *name;
    qc_ethosu_config_info info;
} config_row;

static const config_row configs[] = {
    [QC_ETHOSU_U55_32] = {"ethos-u55-32", {32, 1, 4, 8}},
    [QC_ETHOSU_U55_64] = {"ethos-u55-64", {64, 1, 8, 8}},
    [QC_ETHOSU_U55_128] = {"ethos-u55-128", {128, 1, 8, 8}},
    [QC_ETHOSU_U55_256] = {"ethos-u55-256", {256, 1, 8, 8}},
    [QC_ETHOSU_U65_256] = {"ethos-u65-256", {256, 1, 8, 8}},
    [QC_ETHOSU_U65_512] = {"ethos-u65-512", {512, 2, 8, 8}},
};

static int known(qc_ethosu_config c)
{
    return c >= QC_ETHOSU_U55_32 && c <= QC_ETHOSU_U65_512;
}

qc_status qc_ethosu_config_get(qc_ethosu_config_info *out, qc_ethosu_config config)
{
    QC_CHECK_NOT_NULL(out);
    if (!known(config))
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'config' is %d, not a qc_ethosu_config value (1..%d)",
                       (int)config, (int)QC_ETHOSU_U65_512);
    *out = configs[config].info;
    return QC_OK;
}

const char *qc_ethosu_config_string(qc_ethosu_config config)
{
    return known(config) ? configs[config].name : "unknown";
}
