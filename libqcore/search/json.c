/* The search as JSON: space, options, evaluations, front and predicted front, composed in memory and
 * written atomically (temporary file in the target's folder, fsync, rename). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "search/state.h"

static const char *const ALGORITHM_NAMES[] = {"qcore", "random", "greedy", "oneshot_dp"};

static void number(FILE *f, double x)
{
    if (isfinite(x)) fprintf(f, "%.17g", x);
    else fputs("null", f);
}

static void string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void points(FILE *f, const char *name, const qc_search_front *p, const qc_search *s)
{
    fprintf(f, ",\n  \"%s\": [", name);
    for (size_t i = 0; i < p->size; i++) {
        fprintf(f, "%s\n    {\"choice\": [", i ? "," : "");
        for (size_t t = 0; t < p->num_tensors; t++) fprintf(f, "%s%u", t ? ", " : "", p->choices[i * p->num_tensors + t]);
        fputs("], \"cost\": ", f);
        number(f, p->cost[i]);
        fputs(", \"metric\": ", f);
        number(f, p->metric[i]);
        fprintf(f, ", \"fidelity_index\": %zu, \"fidelity\": ", p->fidelity[i]);
        number(f, s->fidelity[p->fidelity[i]]);
        fputc('}', f);
    }
    fputs("\n  ]", f);
}

static void space_json(FILE *f, const qc_search_space *sp)
{
    fputs(",\n  \"tensors\": [", f);
    for (size_t t = 0; t < sp->num_tensors; t++) {
        fprintf(f, "%s\n    {\"candidates\": [", t ? "," : "");
        for (uint32_t c = 0; c < sp->num_candidates[t]; c++) {
            size_t e = sp->offset[t] + c;
            fprintf(f, "%s{\"label\": ", c ? ", " : "");
            if (sp->label[e]) string(f, sp->label[e]);
            else fputs("null", f);
            fputs(", \"cost\": ", f);
            number(f, sp->cost[e]);
            fputs(", \"proxy\": ", f);
            number(f, sp->proxy[e]);
            fputc('}', f);
        }
        fputs("]}", f);
    }
    fputs("\n  ]", f);
}

static void header_json(FILE *f, const qc_search *s)
{
    double rc, rm;
    qc__search_reference_now(s, &rc, &rm);
    fprintf(f, "{\n  \"format\": \"qcore-search\",\n  \"algorithm\": \"%s\",\n  \"seed\": %llu,\n"
               "  \"max_evaluations\": %zu,\n  \"fidelities\": [",
            ALGORITHM_NAMES[s->opts.algorithm], (unsigned long long)s->opts.seed, s->opts.max_evaluations);
    for (size_t i = 0; i < s->num_fidelities; i++) {
        if (i) fputs(", ", f);
        number(f, s->fidelity[i]);
    }
    fputs("],\n  \"reference\": {\"cost\": ", f);
    number(f, rc);
    fputs(", \"metric\": ", f);
    number(f, rm);
    fputs("},\n  \"prior_width\": ", f);
    number(f, s->opts.prior_width);
}

static qc_status compose(char **text, size_t *size, const qc_search *s, const qc_search_front *front,
                         const qc_search_front *predicted, const char *function)
{
    FILE *f = open_memstream(text, size);
    if (f == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot open a memory stream");
    header_json(f, s);
    space_json(f, s->space);
    points(f, "evaluations", s->evals, s);
    points(f, "front", front, s);
    points(f, "predicted_front", predicted, s);
    fputs("\n}\n", f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot compose the JSON text");
    return QC_OK;
}

static int write_fd(int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        data += n, size -= (size_t)n;
    }
    return fsync(fd);
}

static qc_status write_atomic(const char *path, const char *data, size_t size, const char *function)
{
    size_t len = strlen(path);
    char *temp = malloc(len + 8);
    if (temp == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate a file name");
    memcpy(temp, path, len);
    memcpy(temp + len, ".XXXXXX", 8);
    int fd = mkstemp(temp);
    if (fd < 0) {
        qc_status st = QC_FAIL_IN(function, QC_ERR_IO, "cannot create a temporary file beside '%s': %s", path,
                                  strerror(errno));
        free(temp);
        return st;
    }
    int bad = write_fd(fd, data, size);
    bad |= close(fd);
    if (bad || rename(temp, path) != 0) {
        qc_status st = QC_FAIL_IN(function, QC_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        unlink(temp);
        free(temp);
        return st;
    }
    free(temp);
    return QC_OK;
}

qc_status qc_search_write_json(const qc_search *s, const char *path)
{
    QC_CHECK_NOT_NULL(s);
    QC_CHECK_NOT_NULL(path);
    qc_search_front *front = NULL, *predicted = NULL;
    char *text = NULL;
    size_t size = 0;
    qc_status st = qc_search_evaluated_front(&front, s);
    if (st == QC_OK) st = qc_search_predicted_front(&predicted, s);
    if (st == QC_OK) st = compose(&text, &size, s, front, predicted, __func__);
    if (st == QC_OK) st = write_atomic(path, text, size, __func__);
    free(text);
    qc_search_front_free(front);
    qc_search_front_free(predicted);
    return st;
}
