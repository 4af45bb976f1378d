/* qcore search: which width each linear layer's weight gets (qc_model_search_run over a whole model),
 * the cost/metric front written as JSON and printed, and one point of it emitted as a recipe file that
 * qcore quantize --recipe takes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "search_report.h"

static const char HELP[] =
    "usage: qcore search MODEL.onnx -o FRONT.json --data INPUT=FILE [--eval-data INPUT=FILE] [--labels FILE]\n"
    "                    [--emit-recipe RECIPE.txt] [options]\n"
    "\n"
    "Mixed-precision search: quantizes every linear layer of MODEL at each candidate width once (one pass of\n"
    "calibration statistics, the recipe's method, grid, activation bits, AXE and rotation), then evaluates whole-model\n"
    "configurations (one width per layer) on the evaluation data with qcore's executor, trading a cost (lower\n"
    "is better) against a metric (higher is better): top-1 accuracy with --labels, else the mean cosine of\n"
    "each sample's output to MODEL's. Writes the front of non-dominated evaluated configurations (and the\n"
    "front the search's surrogate predicts) as JSON, prints it, and with --emit-recipe writes one point as a\n"
    "recipe file, so that `qcore quantize MODEL --recipe RECIPE.txt --data INPUT=FILE -o OUT.onnx` gives that\n"
    "configuration's model. Data files: .npy, IDX (gzip or not) or TensorProto .pb; samples along axis 0.\n"
    "\n"
    "  -o, --output FILE          the front as JSON (written atomically; nothing is written on failure)\n"
    "      --data INPUT=FILE      calibration data for graph input INPUT (repeat for each input)\n"
    "      --eval-data INPUT=FILE evaluation data (held out; repeat per input); default: the calibration samples\n"
    "      --labels FILE          integer class labels of the evaluation samples: the metric is top-1 accuracy\n"
    "      --eval-output NAME     the graph output scored (default: the first)\n"
    "      --input-scale X        multiply float inputs (calibration and evaluation) by X\n"
    "      --samples N            calibration samples used (default 512)\n"
    "      --eval-samples N       evaluation samples used (default: all)\n"
    "      --batch N              samples per executor run and per evaluation batch (default 64)\n"
    "      --widths LIST          candidate weight widths, comma-separated, each 2..16 or 0 for a float weight\n"
    "                             (default 0,8,6,4,3,2)\n"
    "      --lq-bits LIST         also LQ candidates, comma-separated K in 1..4: the weight as learned K-bit levels\n"
    "                             (one basis per output channel, weight-only), after the widths (default none)\n"
    "      --cost C               bytes (stored weight bytes, default), bit-operations (per sample: MACs x\n"
    "                             weight bits x input bits) or ethosu-bytes (Ethos-U weight streams, as Vela packs\n"
    "                             them; needs --ethosu-config)\n"
    "      --ethosu-config NAME   ethos-u55-32 .. ethos-u55-256, ethos-u65-256/512, ethos-u85-128 .. -2048: each\n"
    "                             candidate's Ethos-U stream is measured (in the JSON whatever the cost)\n"
    "      --proxy P              what the search starts from: model (each candidate alone in the model, run on the\n"
    "                             --proxy-data batches, its output's squared relative error against all weights\n"
    "                             float, each sample's to the nearest non-negative multiple of its float output;\n"
    "                             one run per candidate and batch), model-scaled (default: the model's at each\n"
    "                             layer's lowest width, other widths scaled by the layer's own errors; one run per\n"
    "                             layer and batch, and per LQ candidate) or layer (the layer's own output error, no\n"
    "                             model run)\n"
    "      --proxy-data D         the data the model proxy runs on: evaluation (default: the first --proxy-batches\n"
    "                             evaluation batches, measured once they are added; the candidates were fitted on\n"
    "                             the calibration data, so errors measured there flatter some layers) or\n"
    "                             calibration (the first calibration batches, while the candidates are made).\n"
    "                             Not with --proxy layer, whose own error needs no run\n"
    "      --proxy-batches N      the batches of --proxy-data the model proxy runs, --batch samples each (0: all;\n"
    "                             default 1 evaluation batch, or all calibration batches: one run per layer over\n"
    "                             the whole evaluation set would cost about as many full evaluations as layers)\n"
    "      --budget N             full evaluations (default 32)\n"
    "      --algorithm A          qcore (surrogate-guided, default), random, greedy or oneshot-dp\n"
    "      --seed N               seed of every random draw (default 0); a search is deterministic for a seed\n"
    "      --fidelities LIST      successive halving (qcore algorithm): fractions of the evaluation batches,\n"
    "                             ascending, the last 1 (e.g. 0.25,1); default: every evaluation on all of them\n"
    "      --eta N                successive halving: promote 1 in N per fidelity (default 3)\n"
    "      --prior-width W        how far the qcore algorithm's surrogate lets each layer's loss stray from its proxy,\n"
    "                             as a multiple of the default width, 0..100 (default 0: 0.5 for a model proxy, 1 for\n"
    "                             the layer proxy); narrower trusts the proxy more, wider tests it with more evaluations\n"
    "      --reference-cost C     the hypervolume's reference point: the largest cost worth paying, and\n"
    "      --reference-metric M   the smallest metric worth having (e.g. the all-8-bit bytes and the float\n"
    "                             model's metric minus what may be lost). The qcore algorithm spends its\n"
    "                             evaluations where configurations can beat this point; default: the costliest\n"
    "                             configuration and the lowest metric of the first evaluations\n"
    "      --emit-recipe FILE     the recipe of one front point (default: the highest metric) for qcore quantize:\n"
    "                             the base recipe, one-pass, the calibration settings and a layer-bits (or, for an\n"
    "                             LQ candidate, lq-layer) line per layer\n"
    "      --pick I               emit front point I (as numbered in the table; 0 is the cheapest)\n"
    "      --max-cost C           emit the highest-metric front point whose cost is at most C\n"
    RECIPE_HELP
    RECIPE_ROTATION_HELP
    "      --rotation-choice      with --rotation: each layer rotated online may also stay\n"
    "                             unrotated (a u after its width in the table; 'unrotated' in the JSON and recipe)\n"
    "      --one-pass             accepted (for recipe files); the candidates always come from one pass\n"
    "      --threads N            threads (default: all cores)\n"
    "  -q, --quiet                no progress bar, no notes on stderr\n"
    "Exit codes: 0 done, 1 failed, 2 wrong command line, 3 unreadable input.\n";

static const struct option LONG[] = {
    {"output", required_argument, 0, 'o'}, {"data", required_argument, 0, 'd'}, {"eval-data", required_argument, 0, 'E'},
    {"labels", required_argument, 0, 'l'}, {"eval-output", required_argument, 0, 'O'},
    {"input-scale", required_argument, 0, 'S'}, {"samples", required_argument, 0, 'n'},
    {"eval-samples", required_argument, 0, 'N'}, {"batch", required_argument, 0, 'b'}, {"widths", required_argument, 0, 'W'},
    {"lq-bits", required_argument, 0, 'J'},
    {"cost", required_argument, 0, 'c'}, {"ethosu-config", required_argument, 0, 'C'}, {"budget", required_argument, 0, 'B'},
    {"algorithm", required_argument, 0, 'G'}, {"seed", required_argument, 0, 's'},
    {"fidelities", required_argument, 0, 'F'}, {"eta", required_argument, 0, 'e'},
    {"reference-cost", required_argument, 0, 'Z'}, {"proxy", required_argument, 0, 'y'},
    {"proxy-batches", required_argument, 0, 'Q'}, {"proxy-data", required_argument, 0, 'M'},
    {"prior-width", required_argument, 0, 'j'},
    {"rotation-choice", no_argument, 0, 'D'},
    {"reference-metric", required_argument, 0, 'Y'}, {"emit-recipe", required_argument, 0, 'r'}, {"pick", required_argument, 0, 'p'}, {"max-cost", required_argument, 0, 'x'},
    RECIPE_LONG_OPTIONS, RECIPE_WIDTH_OPTIONS, RECIPE_ROTATION_OPTIONS, {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};

static int algorithm(const char *text, qc_search_algorithm *out)
{
    int a = name_index(SEARCH_ALGORITHMS, QC_SEARCH_QCORE, QC_SEARCH_ONESHOT_DP, text);
    if (a < 0) return fail("search", EXIT_USAGE, "--algorithm takes qcore, random, greedy or oneshot-dp, got '%s'", text);
    *out = (qc_search_algorithm)a;
    return EXIT_DONE;
}

static int cost(const char *text, qc_model_cost *out)
{
    int c = name_index(SEARCH_COSTS, QC_MODEL_COST_BYTES, QC_MODEL_COST_ETHOSU_BYTES, text);
    if (c < 0) return fail("search", EXIT_USAGE, "--cost takes bytes, bit-operations or ethosu-bytes, got '%s'", text);
    *out = (qc_model_cost)c;
    return EXIT_DONE;
}

static int proxy(const char *text, qc_model_proxy *out)
{
    int p = name_index(SEARCH_PROXIES, QC_MODEL_PROXY_LAYER, QC_MODEL_PROXY_MODEL_SCALED, text);
    if (p < 0) return fail("search", EXIT_USAGE, "--proxy takes layer, model or model-scaled, got '%s'", text);
    *out = (qc_model_proxy)p;
    return EXIT_DONE;
}

/* --proxy-data: evaluation or calibration. */
static int proxy_data(const char *text, search_cli *o)
{
    int d = name_index(SEARCH_PROXY_DATA, PROXY_ON_EVALUATION, PROXY_ON_CALIBRATION, text);
    if (d < 0) return fail("search", EXIT_USAGE, "--proxy-data takes evaluation or calibration, got '%s'", text);
    o->proxy_data = (search_proxy_data)d, o->has_proxy_data = 1;
    return EXIT_DONE;
}

/* Calls item(o, entry) on every entry of a comma-separated list given to `flag`. */
static int each_entry(search_cli *o, const char *flag, const char *text, int (*item)(search_cli *, const char *))
{
    char copy[256], *save = NULL;
    if (strlen(text) >= sizeof copy) return fail("search", EXIT_USAGE, "%s: list too long", flag);
    strcpy(copy, text);
    int code = EXIT_DONE, entries = 0;
    for (char *e = strtok_r(copy, ",", &save); code == EXIT_DONE && e; e = strtok_r(NULL, ",", &save), entries++)
        code = item(o, e);
    if (code == EXIT_DONE && entries == 0) code = fail("search", EXIT_USAGE, "%s takes a comma-separated list", flag);
    return code;
}

/* A --widths entry: 0..16 (the library names a 1 or a repeated width). */
static int width(search_cli *o, const char *text)
{
    long v = 0;
    if (o->num_widths == MAX_WIDTHS) return fail("search", EXIT_USAGE, "--widths: at most %d widths", MAX_WIDTHS);
    int code = parse_integer("search", text, 0, 16, "--widths", &v);
    o->widths[o->num_widths++] = (int32_t)v;
    return code;
}

/* A --fidelities entry: a fraction of the evaluation batches, above the previous one. */
static int fidelity(search_cli *o, const char *text)
{
    double v = 0;
    if (o->num_fidelities == MAX_FIDELITIES) return fail("search", EXIT_USAGE, "--fidelities: at most %d", MAX_FIDELITIES);
    int code = parse_positive("search", "--fidelities", text, &v);
    if (code == EXIT_DONE && (v > 1 || (o->num_fidelities && v <= o->fidelities[o->num_fidelities - 1])))
        code = fail("search", EXIT_USAGE, "--fidelities takes ascending fractions in (0, 1], got '%s' after %g", text,
                    o->num_fidelities ? o->fidelities[o->num_fidelities - 1] : 0.0);
    o->fidelities[o->num_fidelities++] = v;
    return code;
}

/* A --lq-bits entry: 1..4 (the library names a repeated one). */
static int lq_entry(search_cli *o, const char *text)
{
    long v = 0;
    if (o->num_lq == QC_LQ_MAX_BITS) return fail("search", EXIT_USAGE, "--lq-bits: at most %d entries", QC_LQ_MAX_BITS);
    int code = parse_integer("search", text, 1, QC_LQ_MAX_BITS, "--lq-bits", &v);
    o->lq_bits[o->num_lq++] = (int32_t)v;
    return code;
}

static int lq_bits(search_cli *o, const char *text)
{
    o->num_lq = 0;
    return each_entry(o, "--lq-bits", text, lq_entry);
}

static int widths(search_cli *o, const char *text)
{
    o->num_widths = 0;
    return each_entry(o, "--widths", text, width);
}

/* The last fidelity is the full evaluation, 1. */
static int fidelities(search_cli *o, const char *text)
{
    o->num_fidelities = 0;
    int code = each_entry(o, "--fidelities", text, fidelity);
    if (code == EXIT_DONE && o->fidelities[o->num_fidelities - 1] != 1.0)
        code = fail("search", EXIT_USAGE, "--fidelities must end with 1 (the full evaluation), got '%s'", text);
    return code;
}

/* --prior-width: a finite number in [0, 100] (qc_search_options.prior_width's range; 0 lets the proxy choose). */
static int prior_width(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (*end || end == text || !(v >= 0 && v <= 100))
        return fail("search", EXIT_USAGE, "--prior-width takes a number from 0 to 100, got '%s'", text);
    *out = v;
    return EXIT_DONE;
}

static int integer_option(search_cli *o, int c, const char *arg)
{
    long v = 0;
    int code;
    switch (c) {
    case 'n': return parse_integer("search", arg, 1, 1L << 30, "--samples", &o->samples);
    case 'N': return parse_integer("search", arg, 1, 1L << 30, "--eval-samples", &o->eval_samples);
    case 'b': return parse_integer("search", arg, 1, 1L << 20, "--batch", &o->batch);
    case 't': return parse_integer("search", arg, 0, 1024, "--threads", &o->threads);
    case 'p': return parse_integer("search", arg, 0, 1L << 30, "--pick", &o->pick);
    case 'Q': return parse_integer("search", arg, 0, 1L << 30, "--proxy-batches", &o->proxy_batches);
    case 'B': code = parse_integer("search", arg, 1, 1000000, "--budget", &v), o->search.max_evaluations = (size_t)v; break;
    case 's': code = parse_integer("search", arg, 0, 0x7fffffffL, "--seed", &v), o->search.seed = (uint64_t)v; break;
    case 'e': code = parse_integer("search", arg, 2, 1000, "--eta", &v), o->search.eta = (uint32_t)v; break;
    default: return recipe_option(&o->ro, "search", c, arg);
    }
    return code;
}

static int apply(void *state, int c, const char *arg)
{
    search_cli *o = state;
    switch (c) {
    case 'o': o->output = arg; return EXIT_DONE;
    case 'd': return add_feed_spec("search", o->data, &o->num_data, arg);
    case 'E': return add_feed_spec("search", o->eval_data, &o->num_eval, arg);
    case 'l': o->labels = arg; return EXIT_DONE;
    case 'O': o->eval_output = arg; return EXIT_DONE;
    case 'S': return parse_scale("search", arg, &o->input_scale);
    case 'W': return widths(o, arg);
    case 'J': return lq_bits(o, arg);
    case 'c': return cost(arg, &o->cost);
    case 'y': return proxy(arg, &o->proxy);
    case 'M': return proxy_data(arg, o);
    case 'C': return parse_ethosu_config("search", "--ethosu-config", arg, QC_ETHOSU_U85_2048, &o->ethosu_config);
    case 'G': return algorithm(arg, &o->search.algorithm);
    case 'F': return fidelities(o, arg);
    case 'r': o->emit_recipe = arg; return EXIT_DONE;
    case 'x': o->has_max_cost = 1; return parse_positive("search", "--max-cost", arg, &o->max_cost);
    case 'Z': return parse_positive("search", "--reference-cost", arg, &o->search.reference_cost);
    case 'Y': return parse_positive("search", "--reference-metric", arg, &o->search.reference_metric);
    case 'j': return prior_width(arg, &o->search.prior_width);
    case 'q': o->quiet = 1; return EXIT_DONE;
    case 'D': o->rotation_choice = 1; return EXIT_DONE;
    case 'w':
    case 'K':
    case 'L': return fail("search", EXIT_USAGE, "--weight-bits, --layer-bits and --lq-layer are quantize's: the search gives "
                                                "each layer a width among --widths or --lq-bits");
    default: return integer_option(o, c, arg);
    }
}

/* The combinations a single flag cannot check. */
static int check(const search_cli *o)
{
    if (o->cost == QC_MODEL_COST_ETHOSU_BYTES && o->ethosu_config == 0)
        return fail("search", EXIT_USAGE, "--cost ethosu-bytes needs --ethosu-config NAME");
    if ((o->pick >= 0 || o->has_max_cost) && o->emit_recipe == NULL)
        return fail("search", EXIT_USAGE, "--pick and --max-cost choose the point --emit-recipe FILE writes");
    if (o->proxy == QC_MODEL_PROXY_LAYER && o->proxy_batches > 0)
        return fail("search", EXIT_USAGE, "--proxy-batches is for --proxy model or model-scaled; the layer proxy runs no batch");
    if (o->proxy == QC_MODEL_PROXY_LAYER && o->has_proxy_data)
        return fail("search", EXIT_USAGE, "--proxy-data is for --proxy model or model-scaled; the layer proxy runs no batch");
    if (o->pick >= 0 && o->has_max_cost) return fail("search", EXIT_USAGE, "give --pick or --max-cost, not both");
    if (o->emit_recipe && strcmp(o->emit_recipe, o->output) == 0)
        return fail("search", EXIT_USAGE, "--emit-recipe and -o name the same file");
    if (o->num_fidelities > 1 && o->search.algorithm != QC_SEARCH_QCORE)
        return fail("search", EXIT_USAGE, "--fidelities (successive halving) is for --algorithm qcore only");
    return EXIT_DONE;
}

/* Whether the model proxy is measured on the evaluation batches, once they are added (the search is then
 * created with the layer proxy, which runs nothing), rather than on the calibration batches at create. */
static int proxy_on_evaluation(const search_cli *o)
{
    return o->proxy != QC_MODEL_PROXY_LAYER && o->proxy_data == PROXY_ON_EVALUATION;
}

/* --proxy-batches not given: one evaluation batch (a pass per layer over all of them would cost about as many
 * full evaluations as there are layers), or every calibration batch as before --proxy-data. */
static void resolve_proxy_batches(search_cli *o)
{
    if (o->proxy_batches < 0)
        o->proxy_batches = proxy_on_evaluation(o) ? 1 : 0;
}

static int parse(search_cli *o, int argc, char **argv)
{
    int code = recipe_options_init(&o->ro, "search");
    if (code == EXIT_DONE && qc_search_options_init(&o->search, QC_SEARCH_OPTIONS_VERSION) != QC_OK)
        code = fail("search", EXIT_FAILED, "%s", qc_last_error());
    o->samples = 512, o->batch = 64, o->input_scale = 1.0, o->pick = -1, o->proxy = QC_MODEL_PROXY_MODEL_SCALED;
    o->proxy_batches = -1; /* not given: resolve_proxy_batches */
    static const int32_t DEFAULT_WIDTHS[] = {0, 8, 6, 4, 3, 2};
    memcpy(o->widths, DEFAULT_WIDTHS, sizeof DEFAULT_WIDTHS), o->num_widths = sizeof DEFAULT_WIDTHS / sizeof *DEFAULT_WIDTHS;
    if (code == EXIT_DONE) code = recipe_files_read(&o->ro, "search", argc, argv, LONG, apply, o); /* flags override them */
    if (code == EXIT_DONE) code = parse_command_line("search", argc, argv, LONG, HELP, apply, o, &o->model);
    if (code == EXIT_DONE) code = check_calibration_command("search", o->output, o->num_data);
    if (code == EXIT_DONE) resolve_proxy_batches(o);
    if (code == EXIT_DONE) code = check(o);
    recipe_options_finish(&o->ro);
    o->search.num_fidelities = o->num_fidelities, o->search.fidelities = o->fidelities;
    return code;
}

/* A failed library call: a rejected argument is a wrong command line, file errors unreadable input. */
static int library_failure(qc_status st)
{
    return fail("search", st == QC_ERR_INVALID_ARG ? EXIT_USAGE : exit_code_of(st), "%s", qc_last_error());
}

/* The evaluation samples used of `f` (--eval-samples, else all). */
static int64_t evaluation_samples(const search_cli *o, const feed_set *f)
{
    return o->eval_samples > 0 && o->eval_samples < f->samples ? o->eval_samples : f->samples;
}

/* The evaluation data: --eval-data, else the calibration feeds; labels read before the long work. */
static int read_evaluation(const search_cli *o, calibration *c, feed_set *heldout, const feed_set **eval, qc_array **labels)
{
    int code = EXIT_DONE;
    if (o->num_eval)
        code = feeds_read(heldout, "search", c->model, (char **)o->eval_data, o->num_eval, o->input_scale, o->eval_samples);
    *eval = o->num_eval ? heldout : &c->feeds;
    if (o->num_eval == 0 && !o->quiet)
        fprintf(stderr, "qcore search: no --eval-data: configurations are measured on the calibration samples, which "
                        "flatters them\n");
    if (code == EXIT_DONE && o->labels) code = labels_read("search", o->labels, evaluation_samples(o, *eval), labels);
    return code;
}

/* Labels [first, first + n) as int64 (what qc_model_search_add_batch takes) into `buffer`. */
static void labels_slice(const qc_tensor *labels, int64_t first, int64_t n, int64_t *buffer, qc_tensor *out)
{
    for (int64_t i = 0; i < n; i++) buffer[i] = label_at(labels, first + i);
    qc_tensor_init(out, buffer, QC_DT_I64, 1, (int64_t[]){n}, NULL);
}

static int add_evaluation(const search_cli *o, qc_model_search *ms, const feed_set *f, const qc_array *labels,
                          int64_t *samples)
{
    int64_t total = evaluation_samples(o, f);
    int64_t *buffer = malloc((size_t)o->batch * sizeof *buffer);
    if (buffer == NULL) return fail("search", EXIT_FAILED, "no memory");
    qc_status st = QC_OK;
    for (int64_t first = 0; st == QC_OK && first < total; first += o->batch) {
        int64_t n = total - first < o->batch ? total - first : o->batch;
        qc_tensor views[MAX_FEEDS], label_view;
        feeds_slice(f, first, n, views);
        if (labels) labels_slice(qc_array_tensor(labels), first, n, buffer, &label_view);
        st = qc_model_search_add_batch(ms, f->count, (const char *const *)f->names, views, labels ? &label_view : NULL);
    }
    free(buffer);
    *samples = total;
    return st == QC_OK ? EXIT_DONE : library_failure(st);
}

/* --proxy-batches against the batches of --proxy-data (as add_batches and add_evaluation cut them), before
 * the candidates are made: the library would refuse it only after that long work. */
static int check_proxy_batches(const search_cli *o, const calibration *c, const feed_set *eval)
{
    int64_t calibration_samples = c->feeds.samples < o->samples ? c->feeds.samples : o->samples;
    int64_t samples = o->proxy_data == PROXY_ON_EVALUATION ? evaluation_samples(o, eval) : calibration_samples;
    int64_t batches = (samples + o->batch - 1) / o->batch;
    if (o->proxy_batches <= batches) return EXIT_DONE;
    return fail("search", EXIT_USAGE, "--proxy-batches %ld is more than the %lld %s batches (%lld samples, --batch %ld)",
                o->proxy_batches, (long long)batches, SEARCH_PROXY_DATA[o->proxy_data], (long long)samples, o->batch);
}

static int create(const search_cli *o, qc_pipeline *p, qc_model_search **ms)
{
    qc_model_search_options opts;
    qc_status st = qc_model_search_options_init(&opts, QC_MODEL_SEARCH_OPTIONS_VERSION);
    opts.recipe = &o->ro.recipe, opts.num_widths = o->num_widths, opts.widths = o->widths;
    opts.output = o->eval_output, opts.ethosu_config = o->ethosu_config;
    opts.proxy = proxy_on_evaluation(o) ? QC_MODEL_PROXY_LAYER : o->proxy;
    opts.proxy_batches = proxy_on_evaluation(o) ? 0 : (size_t)o->proxy_batches;
    opts.num_lq_bits = o->num_lq, opts.lq_bits = o->lq_bits;
    opts.rotation_choice = o->rotation_choice;
    if (st == QC_OK) st = qc_model_search_create(ms, p, &opts);
    return st == QC_OK ? EXIT_DONE : library_failure(st);
}

/* The model proxy on the first --proxy-batches evaluation batches (progress: "model-level proxies"). */
static int measure_proxy(const search_cli *o, qc_model_search *ms)
{
    qc_status st = qc_model_search_measure_proxy(ms, o->proxy, (size_t)o->proxy_batches);
    return st == QC_OK ? EXIT_DONE : library_failure(st);
}

static int search(const search_cli *o, qc_model_search *ms, qc_search **out)
{
    qc_search_space *space = NULL;
    qc_status st = qc_model_search_space(ms, o->cost, &space);
    if (st == QC_OK) st = qc_model_search_run(ms, space, &o->search, out);
    qc_search_space_free(space);
    return st == QC_OK ? EXIT_DONE : library_failure(st);
}

static int run(const search_cli *o, qc_ctx *ctx)
{
    calibration c;
    feed_set heldout = {0};
    const feed_set *eval = NULL;
    qc_array *labels = NULL;
    qc_model_search *ms = NULL;
    qc_search *found = NULL;
    search_outcome r = {.cli = o};
    int code = calibration_open(&c, "search", o->model, (char **)o->data, o->num_data, o->input_scale, o->samples,
                                o->batch, ctx);
    if (code == EXIT_DONE) code = read_evaluation(o, &c, &heldout, &eval, &labels);
    if (code == EXIT_DONE) code = check_proxy_batches(o, &c, eval);
    if (code == EXIT_DONE) code = create(o, c.pipeline, &ms);
    if (code == EXIT_DONE) code = add_evaluation(o, ms, eval, labels, &r.eval_samples);
    if (code == EXIT_DONE && proxy_on_evaluation(o)) code = measure_proxy(o, ms);
    if (code == EXIT_DONE) code = search(o, ms, &found);
    r.model = c.model, r.pipeline = c.pipeline, r.model_search = ms, r.search = found;
    if (code == EXIT_DONE) code = search_report(&r);
    qc_search_free(found);
    qc_model_search_free(ms);
    qc_array_free(labels);
    feeds_free(&heldout);
    calibration_close(&c);
    return code;
}

int cmd_search(int argc, char **argv)
{
    search_cli o = {0};
    int code = parse(&o, argc, argv);
    if (code != EXIT_DONE) {
        recipe_options_free(&o.ro);
        return code < 0 ? EXIT_DONE : code;
    }
    qc_ctx *ctx = NULL;
    if (make_context(&ctx, (int)o.threads, o.quiet) != QC_OK) code = fail("search", EXIT_FAILED, "%s", qc_last_error());
    else code = run(&o, ctx);
    qc_ctx_free(ctx);
    recipe_options_free(&o.ro);
    return code;
}
