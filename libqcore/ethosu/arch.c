/* The Ethos-U configurations: MACs, cores and micro-block depths (Vela's architecture_features for
 * U55/U65, Regor's ethos_u85.cpp for U85). */
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
    /* U85: the OFM micro-block of an 8-bit convolution (1x2x8, 2x2x8, 2x2x16, 2x2x32, 2x2x64). */
    [QC_ETHOSU_U85_128] = {"ethos-u85-128", {128, 1, 8, 8}},
    [QC_ETHOSU_U85_256] = {"ethos-u85-256", {256, 1, 8, 8}},
    [QC_ETHOSU_U85_512] = {"ethos-u85-512", {512, 2, 16, 8}},
    [QC_ETHOSU_U85_1024] = {"ethos-u85-1024", {1024, 4, 32, 8}},
    [QC_ETHOSU_U85_2048] = {"ethos-u85-2048", {2048, 4, 64, 8}},
};

static int known(qc_ethosu_config c)
{
    return c >= QC_ETHOSU_U55_32 && c <= QC_ETHOSU_U85_2048;
}

qc_status qc_ethosu_config_get(qc_ethosu_config_info *out, qc_ethosu_config config)
{
    QC_CHECK_NOT_NULL(out);
    if (!known(config))
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'config' is %d, not a qc_ethosu_config value (1..%d)",
                       (int)config, (int)QC_ETHOSU_U85_2048);
    *out = configs[config].info;
    return QC_OK;
}

const char *qc_ethosu_config_string(qc_ethosu_config config)
{
    return known(config) ? configs[config].name : "unknown";
}

int qc__ethosu_is_u85(qc_ethosu_config config)
{
    return config >= QC_ETHOSU_U85_128 && config <= QC_ETHOSU_U85_2048;
}
