/* The recipe options qcore quantize and qcore search share: the flags that fill a qc_recipe, recipe files
 * ("name = value" lines with the long options' names) read before the flags, and a recipe written back as
 * such a file (what qcore search emits for qcore quantize). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int recipe_options_init(recipe_options *r, const char *command)
{
    memset(r, 0, sizeof *r);
    if (qc_recipe_init(&r->recipe, QC_RECIPE_VERSION) != QC_OK) return fail(command, EXIT_FAILED, "%s", qc_last_error());
    return EXIT_DONE;
}

void recipe_options_free(recipe_options *r)
{
    for (size_t k = 0; k < r->num_formats; k++) free((char *)r->formats[k].weight);
    for (size_t k = 0; k < r->num_lq; k++) free((char *)r->lq[k].weight);
    r->num_formats = 0, r->num_lq = 0;
}

static const char *const METHODS[] = {"", "rtn", "optq", "gpfq"};

const char *recipe_method_name(qc_layer_method m)
{
    return m >= QC_METHOD_RTN && m <= QC_METHOD_GPFQ ? METHODS[m] : "?";
}

static int method(const char *command, const char *text, qc_recipe *r)
{
    int m = name_index(METHODS, QC_METHOD_RTN, QC_METHOD_GPFQ, text);
    if (m < 0) return fail(command, EXIT_USAGE, "--method takes rtn, optq or gpfq, got '%s'", text);
    r->method = (qc_layer_method)m;
    return EXIT_DONE;
}

/* --layer-bits WEIGHT=N (N in 0..16) or --lq-layer WEIGHT=K (K in 1..4) appended to `list`: the name is the
 * text before the last '=' (weight names may hold '='). */
static int weight_format(qc_layer_format *list, size_t *count, const char *command, const char *flag, long lo, long hi,
                         const char *arg)
{
    const char *eq = strrchr(arg, '=');
    if (eq == NULL || eq == arg) return fail(command, EXIT_USAGE, "%s takes WEIGHT=BITS, got '%s'", flag, arg);
    if (*count == MAX_RECIPE_LAYERS) return fail(command, EXIT_USAGE, "at most %d %s", MAX_RECIPE_LAYERS, flag);
    long bits = 0;
    int code = parse_integer(command, eq + 1, lo, hi, flag, &bits);
    char *name = strndup(arg, (size_t)(eq - arg)); /* freed by recipe_options_free */
    if (code == EXIT_DONE && name == NULL) code = fail(command, EXIT_FAILED, "no memory");
    if (code == EXIT_DONE) list[(*count)++] = (qc_layer_format){name, (int32_t)bits};
    else free(name);
    return code;
}

/* A repeatable name flag (--keep-float, --unrotated) into its list. */
static int add_name(const char **list, size_t *count, const char *command, const char *flag, const char *arg)
{
    if (*count == MAX_RECIPE_LAYERS) return fail(command, EXIT_USAGE, "at most %d %s", MAX_RECIPE_LAYERS, flag);
    list[(*count)++] = arg;
    return EXIT_DONE;
}

static const char *const ROTATIONS[] = {"none", "haar", "hadamard"}; /* qc_rotation_kind order */

const char *recipe_rotation_name(qc_rotation_kind k)
{
    return k >= QC_ROTATION_NONE && k <= QC_ROTATION_HADAMARD ? ROTATIONS[k] : "?";
}

static int rotation(const char *command, const char *text, qc_recipe *r)
{
    int k = name_index(ROTATIONS, QC_ROTATION_NONE, QC_ROTATION_HADAMARD, text);
    if (k < 0) return fail(command, EXIT_USAGE, "--rotation takes none, haar or hadamard, got '%s'", text);
    r->rotation = (qc_rotation_kind)k;
    return EXIT_DONE;
}

static int rotation_seed(const char *command, const char *text, qc_recipe *r)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || end == text || text[0] == '-')
        return fail(command, EXIT_USAGE, "--rotation-seed takes an integer in 0..2^64 - 1, got '%s'", text);
    r->rotation_seed = (uint64_t)v;
    return EXIT_DONE;
}

static int group(qc_recipe *r, const char *command, const char *arg)
{
    long v = 0;
    int code = parse_integer(command, arg, 1, 1L << 30, "--group", &v);
    r->weights.granularity = QC_GRAN_GROUP, r->weights.axis = 1, r->weights.group_size = v;
    return code;
}

int recipe_option(recipe_options *r, const char *command, int c, const char *arg)
{
    qc_recipe *q = &r->recipe;
    long v = 0;
    int code = EXIT_DONE;
    switch (c) {
    case 'm': return method(command, arg, q);
    case 'w': code = parse_integer(command, arg, 2, 16, "--weight-bits", &v), q->weights.bits = (int32_t)v; break;
    case 'a': code = parse_integer(command, arg, 0, 16, "--act-bits", &v), q->activation_bits = (int32_t)v; break;
    case 'P': code = parse_integer(command, arg, 2, 64, "--accumulator-bits", &v), q->gpxq.accumulator_bits = (int32_t)v; break;
    case 'T': code = parse_integer(command, arg, 0, 1L << 30, "--tile", &v), q->gpxq.tile_size = v; break;
    case 'g': return group(q, command, arg);
    case 'A': q->weights.symmetric = 0; break;
    case '1': q->sequential = 0; break;
    case 'k': return add_name(r->keep, &r->num_keep, command, "--keep-float", arg);
    case 'U': return add_name(r->unrotated, &r->num_unrotated, command, "--unrotated", arg);
    case 'L': return weight_format(r->formats, &r->num_formats, command, "--layer-bits", 0, 16, arg);
    case 'K': return weight_format(r->lq, &r->num_lq, command, "--lq-layer", 1, QC_LQ_MAX_BITS, arg);
    case 'X': return rotation(command, arg, q);
    case 'V': return rotation_seed(command, arg, q);
    case 'H': q->rotate_heads = 1; break;
    case 'u': return parse_ethosu_config(command, "--ethosu-config", arg, QC_ETHOSU_U85_2048, &q->ethosu_config);
    case 'R': /* read before the flags by recipe_files_read, which knows the option by its full name only */
        if (++r->files_seen > r->files_read)
            return fail(command, EXIT_USAGE, "write --recipe in full (--recipe FILE or --recipe=FILE), got a shorter form");
        break;
    default: return fail(command, EXIT_USAGE, "see qcore %s --help", command);
    }
    return code;
}

void recipe_options_finish(recipe_options *r)
{
    r->recipe.keep_float = r->keep, r->recipe.num_keep_float = r->num_keep;
    r->recipe.unrotated = r->unrotated, r->recipe.num_unrotated = r->num_unrotated;
    r->recipe.layer_formats = r->formats, r->recipe.num_layer_formats = r->num_formats;
    r->recipe.lq_layers = r->lq, r->recipe.num_lq_layers = r->num_lq;
}

static int option_code(const struct option *options, const char *name)
{
    for (const struct option *l = options; l->name; l++)
        if (strcmp(l->name, name) == 0 && strcmp(name, "recipe") != 0) return l->val;
    return 0;
}

/* One recipe file: every line "name = value" (or a flag's bare name) goes to apply as its option would. */
static int read_recipe(const char *command, const char *path, const struct option *options, option_fn apply, void *state)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return fail(command, EXIT_INPUT, "cannot read recipe '%s': %s", path, strerror(errno));
    char line[1024];
    int code = EXIT_DONE, number = 0;
    while (code == EXIT_DONE && fgets(line, sizeof line, f)) {
        number++;
        char *hash = strchr(line, '#'), name[64] = "", value[960] = "";
        if (hash) *hash = '\0';
        if (sscanf(line, " %63[a-z-] = %959s", name, value) < 1) continue;
        int c = option_code(options, name);
        if (c == 0) code = fail(command, EXIT_USAGE, "%s:%d: unknown option '%s'", path, number, name);
        else code = apply(state, c, strdup(value)); /* kept until exit, as argv strings are */
    }
    fclose(f);
    return code;
}

int recipe_files_read(recipe_options *r, const char *command, int argc, char **argv, const struct option *options,
                      option_fn apply, void *state)
{
    for (int i = 1; i < argc; i++) {
        const char *path = strncmp(argv[i], "--recipe=", 9) == 0 ? argv[i] + 9
                           : strcmp(argv[i], "--recipe") == 0 && i + 1 < argc ? argv[++i] : NULL;
        int code = path ? read_recipe(command, path, options, apply, state) : EXIT_DONE;
        if (code != EXIT_DONE) return code;
        r->files_read += path != NULL;
    }
    return EXIT_DONE;
}

/* A name read_recipe gives back whole: one word of at most 959 bytes without '#'. */
static int writable_name(const char *name)
{
    return strlen(name) < 960 && strpbrk(name, " \t\r\n\v\f#") == NULL;
}

static int check_name(const char *command, const char *name)
{
    if (writable_name(name)) return EXIT_DONE;
    return fail(command, EXIT_FAILED, "weight '%s' cannot be written in a recipe file (space or '#')", name);
}

static int check_names(const char *command, const qc_recipe *r)
{
    int code = EXIT_DONE;
    for (size_t k = 0; code == EXIT_DONE && k < r->num_keep_float; k++) code = check_name(command, r->keep_float[k]);
    for (size_t k = 0; code == EXIT_DONE && k < r->num_unrotated; k++) code = check_name(command, r->unrotated[k]);
    for (size_t k = 0; code == EXIT_DONE && k < r->num_layer_formats; k++) code = check_name(command, r->layer_formats[k].weight);
    for (size_t k = 0; code == EXIT_DONE && k < r->num_lq_layers; k++) code = check_name(command, r->lq_layers[k].weight);
    return code;
}

int recipe_write(FILE *out, const char *command, const qc_recipe *r)
{
    int code = check_names(command, r);
    if (code != EXIT_DONE) return code;
    fprintf(out, "method = %s\nact-bits = %d\n", recipe_method_name(r->method), r->activation_bits);
    if (r->num_layer_formats + r->num_lq_layers == 0) fprintf(out, "weight-bits = %d\n", r->weights.bits); /* else per layer */
    if (r->weights.granularity == QC_GRAN_GROUP) fprintf(out, "group = %lld\n", (long long)r->weights.group_size);
    if (!r->weights.symmetric) fputs("asymmetric\n", out);
    if (r->gpxq.accumulator_bits) fprintf(out, "accumulator-bits = %d\n", r->gpxq.accumulator_bits);
    if (r->gpxq.tile_size) fprintf(out, "tile = %lld\n", (long long)r->gpxq.tile_size);
    if (!r->sequential) fputs("one-pass\n", out);
    if (r->rotation) fprintf(out, "rotation = %s\nrotation-seed = %llu\n", ROTATIONS[r->rotation],
                             (unsigned long long)r->rotation_seed);
    if (r->rotate_heads) fputs("rotate-heads\n", out);
    for (size_t k = 0; k < r->num_unrotated; k++) fprintf(out, "unrotated = %s\n", r->unrotated[k]);
    if (r->ethosu_config) fprintf(out, "ethosu-config = %s\n", qc_ethosu_config_string((qc_ethosu_config)r->ethosu_config));
    for (size_t k = 0; k < r->num_keep_float; k++) fprintf(out, "keep-float = %s\n", r->keep_float[k]);
    for (size_t k = 0; k < r->num_layer_formats; k++)
        fprintf(out, "layer-bits = %s=%d\n", r->layer_formats[k].weight, r->layer_formats[k].weight_bits);
    for (size_t k = 0; k < r->num_lq_layers; k++) fprintf(out, "lq-layer = %s=%d\n", r->lq_layers[k].weight, r->lq_layers[k].weight_bits);
    return EXIT_DONE;
}
