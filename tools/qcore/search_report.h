/* qcore search: its command line, and what it writes once the search is done (search_report.c). */
#ifndef QCORE_SEARCH_REPORT_H
#define QCORE_SEARCH_REPORT_H

#include "cli.h"

enum { MAX_WIDTHS = 16, MAX_FIDELITIES = 8 };

/* The data a model proxy is measured on (--proxy-data): the search's evaluation batches
 * (qc_model_search_measure_proxy after they are added) or the pipeline's calibration batches (at create). */
typedef enum search_proxy_data { PROXY_ON_EVALUATION = 0, PROXY_ON_CALIBRATION = 1 } search_proxy_data;

/* The parsed command line. */
typedef struct search_cli {
    const char *model, *output, *labels, *eval_output, *emit_recipe;
    char *data[MAX_FEEDS], *eval_data[MAX_FEEDS];
    size_t num_data, num_eval;
    recipe_options ro;                 /* the base recipe */
    int32_t widths[MAX_WIDTHS];
    size_t num_widths;
    int32_t lq_bits[QC_LQ_MAX_BITS];   /* --lq-bits: LQ candidates after the widths */
    size_t num_lq;
    qc_model_cost cost;
    int32_t ethosu_config;             /* 0: none */
    double fidelities[MAX_FIDELITIES];
    size_t num_fidelities;
    qc_search_options search;          /* algorithm, seed, budget, eta; fidelities point into the above */
    double input_scale, max_cost;
    int has_max_cost, quiet;
    long samples, eval_samples, batch, threads;
    long pick;                         /* -1: none */
    qc_model_proxy proxy;              /* the space's proxy (default: the scaled model's) */
    long proxy_batches;                /* batches of proxy_data the model proxy runs (0: all) */
    search_proxy_data proxy_data;      /* default: the evaluation batches */
    int has_proxy_data;                /* --proxy-data given (refused with the layer proxy) */
    int rotation_choice;               /* --rotation-choice: unrotated twins of each rotated layer's widths */
} search_cli;

/* A finished search (all borrowed). */
typedef struct search_outcome {
    const search_cli *cli;
    const qc_model *model;
    qc_pipeline *pipeline;
    qc_model_search *model_search;
    qc_search *search;
    int64_t eval_samples;
} search_outcome;

/* The names --cost, --proxy, --proxy-data and --algorithm take, indexed by qc_model_cost, qc_model_proxy,
 * search_proxy_data and qc_search_algorithm. */
extern const char *const SEARCH_COSTS[];
extern const char *const SEARCH_PROXIES[];
extern const char *const SEARCH_PROXY_DATA[];
extern const char *const SEARCH_ALGORITHMS[];

/* "bytes", "bit-operations" or "ethosu-bytes", as --cost takes it. */
const char *search_cost_name(qc_model_cost cost);
/* "layer", "model" or "model-scaled", as --proxy takes it. */
const char *search_proxy_name(qc_model_proxy proxy);
/* "qcore", "random", "greedy" or "oneshot-dp", as --algorithm takes it. */
const char *search_algorithm_name(qc_search_algorithm algorithm);

/* Writes the front JSON (-o) and, when asked, the picked point's recipe (--emit-recipe), both atomically
 * and both or neither; then prints the front as a table. On failure prints why and returns its exit code. */
int search_report(const search_outcome *r);

#endif
