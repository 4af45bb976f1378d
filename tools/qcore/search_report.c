/* What qcore search writes once the search is done: the fronts as JSON (each point's configuration as weight
 * name -> bits), the front as a table, and one point as a recipe file for qcore quantize. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search_report.h"

/* Up to this many searched layers the table lists each layer's width. */
enum { PER_LAYER_SUMMARY = 16 };

const char *const SEARCH_COSTS[] = {"bytes", "bit-operations", "ethosu-bytes"};
const char *const SEARCH_ALGORITHMS[] = {"qcore", "random", "greedy", "oneshot-dp"};
const char *const SEARCH_PROXIES[] = {"layer", "model", "model-scaled"};
const char *const SEARCH_PROXY_DATA[] = {"evaluation", "calibration"};

const char *search_cost_name(qc_model_cost cost)
{
    return SEARCH_COSTS[cost];
}

const char *search_proxy_name(qc_model_proxy proxy)
{
    return SEARCH_PROXIES[proxy];
}

const char *search_algorithm_name(qc_search_algorithm algorithm)
{
    return SEARCH_ALGORITHMS[algorithm];
}

/* The fronts of a finished search (owned). */
typedef struct fronts {
    qc_search_front *front, *predicted, *evaluations;
} fronts;

static void fronts_free(fronts *f)
{
    qc_search_front_free(f->front), qc_search_front_free(f->predicted), qc_search_front_free(f->evaluations);
}

static const char *metric_label(const search_outcome *r)
{
    return r->cli->labels ? "accuracy" : "cosine";
}

/* The graph output the metric reads, by the model's own string. */
static const char *scored_output(const search_outcome *r)
{
    qc_value_info v;
    if (r->cli->eval_output) return r->cli->eval_output;
    return qc_model_output(r->model, 0, &v) == QC_OK ? v.name : "";
}

static void number(FILE *out, double x)
{
    if (isfinite(x)) fprintf(out, "%.17g", x);
    else fputs("null", out);
}

/* Whether candidate c is an unrotated twin (--rotation-choice): after the widths and the LQ bits. */
static int is_twin(const search_outcome *r, uint32_t c)
{
    return c >= r->cli->num_widths + r->cli->num_lq;
}

/* Candidate c of layer t as the table shows it: its width, f for a float weight or lqK, a u after an
 * unrotated twin (--rotation-choice). */
static void candidate_label(const search_outcome *r, size_t t, uint32_t c, char *text, size_t size)
{
    qc_model_candidate info;
    int32_t lq = 0;
    qc_model_search_candidate(r->model_search, t, c, &info);
    qc_model_search_candidate_lq_bits(r->model_search, t, c, &lq);
    const char *twin = is_twin(r, c) ? "u" : "";
    if (info.weight_bits == 0) snprintf(text, size, "f");
    else if (lq) snprintf(text, size, "lq%d%s", (int)lq, twin);
    else snprintf(text, size, "%d%s", (int)info.weight_bits, twin);
}

static int64_t bytes_of(const search_outcome *r, const uint32_t *choice)
{
    int64_t bytes = 0;
    for (size_t t = 0; t < qc_model_search_layer_count(r->model_search); t++) {
        qc_model_candidate c;
        qc_model_search_candidate(r->model_search, t, choice[t], &c);
        bytes += c.bytes;
    }
    return bytes;
}

static double fidelity_of(const search_outcome *r, size_t index)
{
    return r->cli->num_fidelities > 1 ? r->cli->fidelities[index] : 1.0;
}

static void json_point(FILE *out, const search_outcome *r, const qc_search_front *f, size_t i)
{
    const uint32_t *choice;
    double cost, metric;
    size_t fidelity, layers = qc_model_search_layer_count(r->model_search);
    qc_search_front_point(f, i, &choice, &cost, &metric, &fidelity);
    fprintf(out, "%s\n    {\"point\": %zu, \"bits\": {", i ? "," : "", i);
    for (size_t t = 0; t < layers; t++) {
        qc_model_candidate c;
        qc_model_search_candidate(r->model_search, t, choice[t], &c);
        fputs(t ? ", " : "", out);
        json_string(out, c.weight);
        fprintf(out, ": %d", c.weight_bits);
    }
    fputs("}, \"lq\": {", out);
    for (size_t t = 0, n = 0; t < layers; t++) {
        qc_model_candidate c;
        int32_t lq = 0;
        qc_model_search_candidate(r->model_search, t, choice[t], &c);
        qc_model_search_candidate_lq_bits(r->model_search, t, choice[t], &lq);
        if (!lq) continue;
        fputs(n++ ? ", " : "", out);
        json_string(out, c.weight);
        fprintf(out, ": %d", lq);
    }
    fputs("}, \"unrotated\": [", out);
    for (size_t t = 0, n = 0; t < layers; t++) {
        if (!is_twin(r, choice[t])) continue;
        qc_model_candidate c;
        qc_model_search_candidate(r->model_search, t, choice[t], &c);
        fputs(n++ ? ", " : "", out);
        json_string(out, c.weight);
    }
    fputs("], \"choice\": [", out);
    for (size_t t = 0; t < layers; t++) fprintf(out, "%s%u", t ? ", " : "", choice[t]);
    fputs("], \"cost\": ", out);
    number(out, cost);
    fprintf(out, ", \"bytes\": %lld, \"metric\": ", (long long)bytes_of(r, choice));
    number(out, metric);
    fputs(", \"fidelity\": ", out);
    number(out, fidelity_of(r, fidelity));
    fputc('}', out);
}

static void json_points(FILE *out, const search_outcome *r, const char *name, const qc_search_front *f)
{
    fprintf(out, ",\n  \"%s\": [", name);
    for (size_t i = 0; i < qc_search_front_size(f); i++) json_point(out, r, f, i);
    fputs("\n  ]", out);
}

static void json_layer(FILE *out, const search_outcome *r, size_t t)
{
    for (uint32_t k = 0; k < qc_model_search_candidate_count(r->model_search, t); k++) {
        qc_model_candidate c;
        qc_model_search_candidate(r->model_search, t, k, &c);
        if (k == 0) {
            qc_layer_info l;
            qc_pipeline_layer(r->pipeline, c.pipeline_layer, &l);
            fprintf(out, "%s\n    {\"weight\": ", t ? "," : "");
            json_string(out, c.weight);
            fprintf(out, ", \"op\": \"%s\", \"in\": %lld, \"out\": %lld, \"candidates\": [", l.op_type,
                    (long long)l.in_features, (long long)l.out_features);
        }
        fprintf(out, "%s{\"bits\": %d, \"lq\": %s, \"bytes\": %lld, \"output_error\": ", k ? ", " : "", c.weight_bits,
                k >= r->cli->num_widths ? "true" : "false", (long long)c.bytes);
        number(out, c.output_error);
        double proxy = NAN;
        qc_model_search_proxy(r->model_search, t, k, &proxy);
        fputs(", \"proxy\": ", out);
        number(out, proxy);
        fprintf(out, ", \"ethosu_bytes\": %lld, \"bit_operations\": ", (long long)c.ethosu_bytes);
        number(out, c.bit_operations);
        int32_t rotated = 0;
        qc_model_search_candidate_rotated(r->model_search, t, k, &rotated);
        fprintf(out, ", \"rotated\": %s}", rotated ? "true" : "false");
    }
    fputs("]}", out);
}

/* The area the front dominates up to the search's reference point (qc_search_hypervolume); NaN if unknown. */
static double hypervolume(const search_outcome *r, const qc_search_front *front)
{
    size_t n = qc_search_front_size(front);
    double reference_cost, reference_metric, area = NAN;
    double *cost = malloc((n + 1) * sizeof *cost), *metric = malloc((n + 1) * sizeof *metric);
    for (size_t i = 0; cost && metric && i < n; i++) qc_search_front_point(front, i, NULL, &cost[i], &metric[i], NULL);
    if (cost && metric && qc_search_reference(r->search, &reference_cost, &reference_metric) == QC_OK &&
        qc_search_hypervolume(&area, cost, metric, n, reference_cost, reference_metric) != QC_OK)
        area = NAN;
    free(cost), free(metric);
    return area;
}

static void json_settings(FILE *out, const search_outcome *r, const qc_search_front *front)
{
    const search_cli *o = r->cli;
    const qc_recipe *q = &o->ro.recipe;
    double reference_cost, reference_metric;
    qc_search_reference(r->search, &reference_cost, &reference_metric);
    fprintf(out, "{\n  \"format\": \"qcore-model-search\",\n  \"model\": ");
    json_string(out, o->model);
    fprintf(out, ",\n  \"output\": ");
    json_string(out, scored_output(r));
    fprintf(out, ", \"metric\": \"%s\", \"evaluation_samples\": %lld, \"cost\": \"%s\",\n", metric_label(r),
            (long long)r->eval_samples, search_cost_name(o->cost));
    fprintf(out, "  \"proxy\": \"%s\", \"proxy_data\": ", search_proxy_name(o->proxy));
    if (o->proxy == QC_MODEL_PROXY_LAYER) fputs("null", out); /* the layer's own error: no batch run */
    else fprintf(out, "\"%s\"", SEARCH_PROXY_DATA[o->proxy_data]);
    fprintf(out, ", \"proxy_batches\": %ld,\n", o->proxy_batches);
    fprintf(out, "  \"algorithm\": \"%s\", \"seed\": %llu, \"budget\": %zu, \"eta\": %u, \"fidelities\": [",
            search_algorithm_name(o->search.algorithm),
            (unsigned long long)o->search.seed, o->search.max_evaluations, o->search.eta);
    for (size_t k = 0; k < (o->num_fidelities > 1 ? o->num_fidelities : 1); k++) {
        fputs(k ? ", " : "", out);
        number(out, fidelity_of(r, k));
    }
    fputs("], \"prior_width\": ", out); /* as given: 0 lets qc_model_search_run choose by the proxy */
    number(out, o->search.prior_width);
    fputs(",\n  \"reference\": {\"cost\": ", out);
    number(out, reference_cost);
    fputs(", \"metric\": ", out);
    number(out, reference_metric);
    fputs("}, \"hypervolume\": ", out);
    number(out, hypervolume(r, front));
    fprintf(out, ",\n  \"recipe\": {\"method\": \"%s\", \"act_bits\": %d, \"group\": %lld, \"symmetric\": %s, "
                 "\"accumulator_bits\": %d, \"tile\": %lld, \"rotation\": \"%s\", \"rotation_seed\": %llu},\n  \"widths\": [",
            recipe_method_name(q->method), q->activation_bits,
            q->weights.granularity == QC_GRAN_GROUP ? (long long)q->weights.group_size : 0LL,
            q->weights.symmetric ? "true" : "false", q->gpxq.accumulator_bits, (long long)q->gpxq.tile_size,
            recipe_rotation_name(q->rotation), (unsigned long long)q->rotation_seed);
    for (size_t k = 0; k < o->num_widths; k++) fprintf(out, "%s%d", k ? ", " : "", o->widths[k]);
    fputs("],\n  \"lq_bits\": [", out);
    for (size_t k = 0; k < o->num_lq; k++) fprintf(out, "%s%d", k ? ", " : "", o->lq_bits[k]);
    fputs("],\n  \"layers\": [", out);
    for (size_t t = 0; t < qc_model_search_layer_count(r->model_search); t++) json_layer(out, r, t);
    fputs("\n  ]", out);
}

static void write_json(FILE *out, const search_outcome *r, const fronts *f)
{
    json_settings(out, r, f->front);
    json_points(out, r, "front", f->front);
    json_points(out, r, "predicted_front", f->predicted);
    json_points(out, r, "evaluations", f->evaluations);
    fputs("\n}\n", out);
}

/* The front point --emit-recipe writes: --pick's, the best under --max-cost, or the highest metric. */
static int pick(const search_outcome *r, const qc_search_front *front, size_t *out)
{
    size_t n = qc_search_front_size(front);
    if (n == 0) return fail("search", EXIT_FAILED, "the search evaluated no configuration at full fidelity");
    if (r->cli->pick >= 0) {
        *out = (size_t)r->cli->pick;
        return *out < n ? EXIT_DONE : fail("search", EXIT_USAGE, "--pick %ld: the front has %zu points (0..%zu)", r->cli->pick, n, n - 1);
    }
    double best = -INFINITY, cheapest = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double cost, metric;
        qc_search_front_point(front, i, NULL, &cost, &metric, NULL);
        cheapest = fmin(cheapest, cost);
        if ((!r->cli->has_max_cost || cost <= r->cli->max_cost) && metric > best) best = metric, *out = i;
    }
    if (best == -INFINITY)
        return fail("search", EXIT_FAILED, "--max-cost %g: no front point costs that little (the cheapest costs %.17g %s)",
                    r->cli->max_cost, cheapest, search_cost_name(r->cli->cost));
    return EXIT_DONE;
}

/* Point i as a recipe file: the calibration settings, then the base recipe with its layer bits, one pass. */
static int write_recipe(FILE *out, const search_outcome *r, const qc_search_front *front, size_t i)
{
    const uint32_t *choice;
    double cost, metric;
    qc_recipe recipe;
    qc_search_front_point(front, i, &choice, &cost, &metric, NULL);
    if (qc_model_search_recipe(r->model_search, choice, &recipe) != QC_OK)
        return fail("search", EXIT_FAILED, "%s", qc_last_error());
    recipe.sequential = 0; /* the search's candidates came from one pass of statistics */
    fprintf(out, "# qcore search: front point %zu of %zu: %s %.17g, %s %.9g on %lld evaluation samples\n", i,
            qc_search_front_size(front), search_cost_name(r->cli->cost), cost, metric_label(r), metric,
            (long long)r->eval_samples);
    fprintf(out, "# use: qcore quantize MODEL --recipe THIS_FILE --data INPUT=FILE (the search's data) -o OUT.onnx\n");
    fprintf(out, "samples = %ld\nbatch = %ld\ninput-scale = %.17g\n", r->cli->samples, r->cli->batch, r->cli->input_scale);
    return recipe_write(out, "search", &recipe);
}

/* Both files to temporary names, then both renamed: on any failure neither path changes. */
static int write_files(const search_outcome *r, const fronts *f, size_t chosen)
{
    atomic_file json = {0}, recipe = {0};
    const char *emit = r->cli->emit_recipe;
    int code = atomic_open(&json, "search", r->cli->output);
    if (code == EXIT_DONE) write_json(json.f, r, f), code = atomic_close(&json, "search");
    if (code == EXIT_DONE && emit) code = atomic_open(&recipe, "search", emit);
    if (code == EXIT_DONE && emit) code = write_recipe(recipe.f, r, f->front, chosen);
    if (code == EXIT_DONE && emit) code = atomic_close(&recipe, "search");
    if (code == EXIT_DONE) code = atomic_commit(&json, "search");
    if (code == EXIT_DONE && emit && (code = atomic_commit(&recipe, "search")) != EXIT_DONE)
        remove(r->cli->output); /* a front without the recipe asked for is not what was asked for */
    atomic_discard(&json), atomic_discard(&recipe);
    return code;
}

/* Few layers: each one's width in layer order ("8 4 f lq2 4u", f for float, u for an unrotated twin);
 * many: how many layers take each candidate ("8:10 4:52 f:2 lq2:3 4u:7"). */
static void width_summary(const search_outcome *r, const uint32_t *choice, char *text, size_t size)
{
    size_t used = 0, layers = qc_model_search_layer_count(r->model_search);
    char label[16];
    text[0] = '\0';
    for (size_t t = 0; layers <= PER_LAYER_SUMMARY && t < layers && used < size; t++) {
        candidate_label(r, t, choice[t], label, sizeof label);
        used += (size_t)snprintf(text + used, size - used, "%s%s", t ? " " : "", label);
    }
    for (uint32_t k = 0; layers > PER_LAYER_SUMMARY && k < 2 * (r->cli->num_widths + r->cli->num_lq) && used < size; k++) {
        size_t n = 0, first = 0; /* candidate k is the same width (and twin or not) in every layer having it */
        for (size_t t = 0; t < layers; t++)
            if (choice[t] == k && n++ == 0) first = t;
        if (n == 0) continue;
        candidate_label(r, first, k, label, sizeof label);
        used += (size_t)snprintf(text + used, size - used, "%s%s:%zu", used ? " " : "", label, n);
    }
}

/* Weight bits per parameter over the searched layers (a float weight counts 32). */
static double mean_bits(const search_outcome *r, const uint32_t *choice)
{
    double bits = 0, params = 0;
    for (size_t t = 0; t < qc_model_search_layer_count(r->model_search); t++) {
        qc_model_candidate c;
        qc_layer_info l;
        qc_model_search_candidate(r->model_search, t, choice[t], &c);
        qc_pipeline_layer(r->pipeline, c.pipeline_layer, &l);
        double n = (double)l.in_features * (double)l.out_features;
        bits += n * (c.weight_bits ? c.weight_bits : 32), params += n;
    }
    return params > 0 ? bits / params : 0;
}

/* One row per front point: its cost (and stored bytes when the cost is something else), metric, weight bits
 * per parameter and how many layers take each width; `chosen` (the emitted point) is starred. */
static void print_table(const search_outcome *r, const fronts *f, long chosen)
{
    size_t n = qc_search_front_size(f->front);
    int bytes_column = r->cli->cost != QC_MODEL_COST_BYTES;
    size_t layers = qc_model_search_layer_count(r->model_search), evaluations = qc_search_front_size(f->evaluations), full = 0;
    int per_layer = layers <= PER_LAYER_SUMMARY;
    for (size_t i = 0; i < evaluations; i++) {
        size_t fidelity;
        qc_search_front_point(f->evaluations, i, NULL, NULL, NULL, &fidelity);
        full += r->cli->num_fidelities <= 1 || fidelity + 1 == r->cli->num_fidelities;
    }
    printf("front: %zu points of %zu evaluations (%zu at full fidelity); %s of '%s' on %lld samples; cost: %s\n", n,
           evaluations, full, metric_label(r), scored_output(r), (long long)r->eval_samples, search_cost_name(r->cli->cost));
    for (size_t t = 0; per_layer && t < layers; t++) {
        qc_model_candidate c;
        qc_model_search_candidate(r->model_search, t, 0, &c);
        printf("%s%s%s", t ? " " : "layers: ", c.weight, t + 1 == layers ? "\n" : "");
    }
    printf("  %3s %16s%*s %10s %9s  %s\n", "#", search_cost_name(r->cli->cost), bytes_column ? 13 : 0,
           bytes_column ? "bytes" : "", metric_label(r), "mean bits",
           per_layer ? "weight bits by layer (f: float)" : "layers per width");
    for (size_t i = 0; i < n; i++) {
        const uint32_t *choice;
        double cost, metric;
        char widths[256], bytes[32] = "";
        qc_search_front_point(f->front, i, &choice, &cost, &metric, NULL);
        width_summary(r, choice, widths, sizeof widths);
        if (bytes_column) snprintf(bytes, sizeof bytes, " %12lld", (long long)bytes_of(r, choice));
        printf("%c %3zu %16.0f%s %10.6f %9.2f  %s\n", (long)i == chosen ? '*' : ' ', i, cost, bytes, metric,
               mean_bits(r, choice), widths);
    }
    double reference_cost, reference_metric;
    qc_search_reference(r->search, &reference_cost, &reference_metric);
    printf("hypervolume %.6g (up to cost %.0f, %s %.6f)\n", hypervolume(r, f->front), reference_cost, metric_label(r),
           reference_metric);
}

int search_report(const search_outcome *r)
{
    fronts f = {0};
    size_t chosen = 0;
    qc_status st = qc_search_evaluated_front(&f.front, r->search);
    if (st == QC_OK) st = qc_search_predicted_front(&f.predicted, r->search);
    if (st == QC_OK) st = qc_search_evaluations(&f.evaluations, r->search);
    int code = st == QC_OK ? EXIT_DONE : fail("search", EXIT_FAILED, "%s", qc_last_error());
    if (code == EXIT_DONE && r->cli->emit_recipe) code = pick(r, f.front, &chosen);
    if (code == EXIT_DONE) code = write_files(r, &f, chosen);
    if (code == EXIT_DONE) print_table(r, &f, r->cli->emit_recipe ? (long)chosen : -1);
    if (code == EXIT_DONE) printf("front written to %s", r->cli->output);
    if (code == EXIT_DONE && r->cli->emit_recipe)
        printf("; point %zu's recipe to %s (qcore quantize %s --recipe %s --data ... -o OUT.onnx)", chosen,
               r->cli->emit_recipe, r->cli->model, r->cli->emit_recipe);
    if (code == EXIT_DONE) putchar('\n');
    fronts_free(&f);
    return code;
}
