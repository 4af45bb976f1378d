/* The mixed-precision search (search/): the DP front against brute-force enumeration, the hypervolume
 * against grid counting, the output-error proxy against its definition, determinism, constraints and the
 * cache over every asked configuration, qcore's search against random search on a synthetic problem with
 * a known truth, and precise failures. */
#include "search/search.h"
#include "test_util.h"

enum { MAX_T = 7, MAX_C = 4 };

/* A random space: integer costs, random proxies, a tie and a forbidden pair when they fit. */
typedef struct space_case {
    size_t T;
    uint32_t C[MAX_T];
    double cost[MAX_T][MAX_C], proxy[MAX_T][MAX_C];
    size_t tie[2];
    int has_tie;
    size_t forbid_t[2];
    uint32_t forbid_c[2];
    int has_forbid;
} space_case;

static space_case random_case(uint64_t seed)
{
    space_case k = {0};
    uint64_t s = seed;
    k.T = 3 + tu_next(&s) % (MAX_T - 2);
    for (size_t t = 0; t < k.T; t++) {
        k.C[t] = 1 + (uint32_t)(tu_next(&s) % MAX_C);
        for (uint32_t c = 0; c < k.C[t]; c++) {
            k.cost[t][c] = (double)(tu_next(&s) % 20);
            k.proxy[t][c] = (double)(tu_next(&s) % 1000) / 100.0;
        }
    }
    for (size_t a = 0; a < k.T && !k.has_tie; a++)
        for (size_t b = a + 1; b < k.T && !k.has_tie; b++)
            if (k.C[a] == k.C[b] && k.C[a] > 1) k.tie[0] = a, k.tie[1] = b, k.has_tie = 1;
    k.forbid_t[0] = 0, k.forbid_t[1] = k.T - 1;
    k.forbid_c[0] = k.C[0] - 1, k.forbid_c[1] = 0;
    k.has_forbid = k.C[0] > 1 || k.C[k.T - 1] > 1;
    return k;
}

static qc_search_space *make_space(const space_case *k)
{
    qc_search_space *s = NULL;
    TU_EXPECT_OK(qc_search_space_create(&s, k->T, k->C));
    for (size_t t = 0; t < k->T; t++)
        for (uint32_t c = 0; c < k->C[t]; c++) {
            TU_EXPECT_OK(qc_search_space_set_cost(s, t, c, k->cost[t][c]));
            TU_EXPECT_OK(qc_search_space_set_proxy(s, t, c, k->proxy[t][c]));
        }
    if (k->has_tie) TU_EXPECT_OK(qc_search_space_tie(s, 2, k->tie));
    if (k->has_forbid) TU_EXPECT_OK(qc_search_space_forbid(s, 2, k->forbid_t, k->forbid_c));
    return s;
}

/* The oracle's own feasibility rule, written from the case (not through the library). */
static int case_allows(const space_case *k, const uint32_t *choice)
{
    if (k->has_tie && choice[k->tie[0]] != choice[k->tie[1]]) return 0;
    if (k->has_forbid && choice[k->forbid_t[0]] == k->forbid_c[0] && choice[k->forbid_t[1]] == k->forbid_c[1]) return 0;
    return 1;
}

/* Next configuration in mixed radix; 0 after the last. */
static int next_choice(const space_case *k, uint32_t *choice)
{
    for (size_t t = 0; t < k->T; t++) {
        if (++choice[t] < k->C[t]) return 1;
        choice[t] = 0;
    }
    return 0;
}

typedef struct pt {
    double cost, metric;
} pt;

static int pt_order(const void *a, const void *b)
{
    const pt *p = a, *q = b;
    if (p->cost != q->cost) return p->cost < q->cost ? -1 : 1;
    return (p->metric < q->metric) - (p->metric > q->metric);
}

/* Brute-force Pareto front of (cost, -proxy): every configuration enumerated. */
static size_t brute_front(const space_case *k, pt *out)
{
    static pt all[1 << 14];
    size_t n = 0;
    uint32_t choice[MAX_T] = {0};
    do {
        if (!case_allows(k, choice)) continue;
        double c = 0, l = 0;
        for (size_t t = 0; t < k->T; t++) c += k->cost[t][choice[t]], l += k->proxy[t][choice[t]];
        all[n++] = (pt){c, -l};
    } while (next_choice(k, choice));
    qsort(all, n, sizeof *all, pt_order);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || all[i].metric > out[m - 1].metric) out[m++] = all[i];
    return m;
}

static size_t cost_range(const space_case *k)
{
    double range = 0;
    for (size_t t = 0; t < k->T; t++) {
        double lo = INFINITY, hi = -INFINITY;
        for (uint32_t c = 0; c < k->C[t]; c++) lo = fmin(lo, k->cost[t][c]), hi = fmax(hi, k->cost[t][c]);
        range += hi - lo;
    }
    return range > 0 ? (size_t)range : 1;
}

Test(search, dp_front_equals_brute_force)
{
    for (uint64_t seed = 1; seed <= 40; seed++) {
        space_case k = random_case(seed * 7919);
        qc_search_space *s = make_space(&k);
        qc_search_front *f = NULL;
        TU_EXPECT_OK(qc_search_dp_front(&f, s, cost_range(&k)));
        static pt want[1 << 14];
        size_t n = brute_front(&k, want);
        cr_assert_eq(qc_search_front_size(f), n, "seed %llu: %zu DP points, %zu by enumeration", (unsigned long long)seed,
                     qc_search_front_size(f), n);
        for (size_t i = 0; i < n; i++) {
            const uint32_t *choice;
            double cost, metric;
            TU_EXPECT_OK(qc_search_front_point(f, i, &choice, &cost, &metric, NULL));
            cr_assert(fabs(cost - want[i].cost) < 1e-9 && fabs(metric - want[i].metric) < 1e-9,
                      "seed %llu point %zu: (%g, %g), enumeration (%g, %g)", (unsigned long long)seed, i, cost, metric,
                      want[i].cost, want[i].metric);
            cr_assert(case_allows(&k, choice), "seed %llu: DP point %zu breaks a tie or a forbidden pair",
                      (unsigned long long)seed, i);
        }
        qc_search_front_free(f);
        qc_search_space_free(s);
    }
}

/* Hypervolume by counting the unit cells of an integer grid that some point dominates. */
static double grid_hypervolume(const double *cost, const double *metric, size_t n, int rc, int rm, int top)
{
    double cells = 0;
    for (int c = -5; c < rc; c++)
        for (int m = rm; m < top; m++) {
            int dominated = 0;
            for (size_t i = 0; i < n && !dominated; i++) dominated = cost[i] <= c && metric[i] >= m + 1;
            cells += dominated;
        }
    return cells;
}

Test(search, hypervolume_equals_grid_count)
{
    uint64_t s = 42;
    for (int trial = 0; trial < 200; trial++) {
        size_t n = tu_next(&s) % 12;
        double cost[12], metric[12];
        for (size_t i = 0; i < n; i++) cost[i] = (double)(tu_next(&s) % 30) - 5, metric[i] = (double)(tu_next(&s) % 30);
        double hv;
        TU_EXPECT_OK(qc_search_hypervolume(&hv, cost, metric, n, 20, 3));
        double want = grid_hypervolume(cost, metric, n, 20, 3, 30);
        cr_assert_eq(hv, want, "trial %d: %g, grid %g", trial, hv, want);
    }
}

Test(search, output_error_proxy_matches_its_definition)
{
    enum { R = 5, K = 7, N = 11 };
    float w[R * K], wq[R * K], x[N * K];
    tu_fill_data(w, R * K, 3, 1.0f);
    tu_fill_data(x, N * K, 4, 1.0f);
    for (int i = 0; i < R * K; i++) wq[i] = roundf(w[i] * 2.0f) / 2.0f;
    double h[K * K] = {0};
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++)
            for (int n = 0; n < N; n++) h[a * K + b] += (double)x[n * K + a] * x[n * K + b] / N;
    double num = 0, den = 0, num_w = 0, den_w = 0; /* ||X E^T||^2 and ||X W^T||^2, row by row */
    for (int n = 0; n < N; n++)
        for (int r = 0; r < R; r++) {
            double ye = 0, yw = 0;
            for (int k = 0; k < K; k++) ye += x[n * K + k] * ((double)w[r * K + k] - wq[r * K + k]), yw += x[n * K + k] * (double)w[r * K + k];
            num += ye * ye, den += yw * yw;
        }
    for (int i = 0; i < R * K; i++) num_w += ((double)w[i] - wq[i]) * ((double)w[i] - wq[i]), den_w += (double)w[i] * w[i];
    double got;
    TU_EXPECT_OK(qc_search_proxy_output_error(&got, NULL, w, wq, R, K, h));
    cr_assert(fabs(got - num / den) < 1e-12 * (num / den), "output error %.17g, direct %.17g", got, num / den);
    TU_EXPECT_OK(qc_search_proxy_output_error(&got, NULL, w, wq, R, K, NULL));
    cr_assert(fabs(got - num_w / den_w) < 1e-12 * (num_w / den_w), "weight error %.17g, direct %.17g", got, num_w / den_w);
}

/* ---- the synthetic problem: metric = 1 - sum of true losses + noise; proxy = truth * distortion ---- */

enum { ST = 16, SC = 6 };
static const int BITS[SC] = {32, 8, 6, 4, 3, 2};

typedef struct synthetic {
    double cost[ST][SC], truth[ST][SC], proxy[ST][SC];
    uint64_t noise_state;
    size_t evaluations;
} synthetic;

static double normal(uint64_t *s)
{
    double u1 = ((double)(tu_next(s) >> 11) + 1) * 0x1.0p-53, u2 = (double)(tu_next(s) >> 11) * 0x1.0p-53;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static void make_synthetic(synthetic *p, uint64_t seed)
{
    uint64_t s = seed * 1000003 + 17;
    for (int t = 0; t < ST; t++) {
        double size = (double)(1 + tu_next(&s) % 63) * 1000, sens = exp(normal(&s));
        for (int c = 0; c < SC; c++) {
            p->cost[t][c] = size * BITS[c] / 8;
            p->truth[t][c] = c == 0 ? 0 : 0.02 * sens * pow(4.0, -(BITS[c] - 2));
            p->proxy[t][c] = p->truth[t][c] * exp(0.7 * normal(&s));
        }
    }
    p->noise_state = seed + 99;
    p->evaluations = 0;
}

static int synthetic_eval(const uint32_t *choice, size_t fidelity_index, double fidelity, double *metric, void *user)
{
    synthetic *p = user;
    double m = 1;
    for (int t = 0; t < ST; t++) m -= p->truth[t][choice[t]];
    *metric = m + 1e-4 * normal(&p->noise_state) / sqrt(fidelity);
    p->evaluations += fidelity_index == 0 || fidelity >= 1.0;
    return 0;
}

static qc_search_space *synthetic_space(const synthetic *p)
{
    uint32_t counts[ST];
    for (int t = 0; t < ST; t++) counts[t] = SC;
    qc_search_space *s = NULL;
    TU_EXPECT_OK(qc_search_space_create(&s, ST, counts));
    for (int t = 0; t < ST; t++)
        for (int c = 0; c < SC; c++) {
            TU_EXPECT_OK(qc_search_space_set_cost(s, t, c, p->cost[t][c]));
            TU_EXPECT_OK(qc_search_space_set_proxy(s, t, c, p->proxy[t][c]));
        }
    return s;
}

static double front_hypervolume(const qc_search_front *f, double rc, double rm)
{
    size_t n = qc_search_front_size(f);
    double *cost = malloc((n + 1) * sizeof *cost), *metric = malloc((n + 1) * sizeof *metric), hv;
    for (size_t i = 0; i < n; i++) TU_EXPECT_OK(qc_search_front_point(f, i, NULL, &cost[i], &metric[i], NULL));
    TU_EXPECT_OK(qc_search_hypervolume(&hv, cost, metric, n, rc, rm));
    free(cost);
    free(metric);
    return hv;
}

/* Hypervolume of the evaluated front of one search, reference (largest cost, 0.9). */
static double search_hypervolume(qc_search_algorithm algorithm, uint64_t seed, size_t budget)
{
    synthetic p;
    make_synthetic(&p, seed);
    qc_search_space *space = synthetic_space(&p);
    qc_search_options o = QC_SEARCH_OPTIONS_INIT;
    o.algorithm = algorithm, o.seed = seed, o.max_evaluations = budget;
    qc_search *s = NULL;
    TU_EXPECT_OK(qc_search_create(&s, space, &o, NULL));
    TU_EXPECT_OK(qc_search_run(s, synthetic_eval, &p));
    qc_search_front *f = NULL;
    TU_EXPECT_OK(qc_search_evaluated_front(&f, s));
    double rc = 0;
    for (int t = 0; t < ST; t++) rc += p.cost[t][0];
    double hv = front_hypervolume(f, rc, 0.9);
    qc_search_front_free(f);
    qc_search_free(s);
    qc_search_space_free(space);
    return hv / rc;
}

Test(search, qcore_beats_random_search_at_32_evaluations)
{
    double sum_q = 0, sum_r = 0;
    for (uint64_t seed = 0; seed < 5; seed++) {
        double q = search_hypervolume(QC_SEARCH_QCORE, seed, 32), r = search_hypervolume(QC_SEARCH_RANDOM, seed, 32);
        cr_assert_gt(q, r, "seed %llu: qcore's hypervolume %.5f is not above random search's %.5f",
                     (unsigned long long)seed, q, r);
        sum_q += q, sum_r += r;
    }
    cr_log_info("mean normalised hypervolume at 32 evaluations: qcore %.5f, random %.5f", sum_q / 5, sum_r / 5);
}

/* ---- the ask/tell contract over every algorithm ---------------------------------------------- */

typedef struct recorder {
    const space_case *k;
    uint32_t asked[512][MAX_T];
    size_t fidelity[512], n;
    size_t check_calls;
} recorder;

/* The check: configurations whose first and last candidates sum to 3 are not allowed. */
static int odd_check(const uint32_t *choice, double *cost, void *user)
{
    recorder *r = user;
    r->check_calls++;
    (void)cost;
    return choice[0] + choice[r->k->T - 1] != 3;
}

static int record_eval(const uint32_t *choice, size_t fidelity_index, double fidelity, double *metric, void *user)
{
    recorder *r = user;
    cr_assert_lt(r->n, 512);
    memcpy(r->asked[r->n], choice, r->k->T * sizeof *choice);
    r->fidelity[r->n++] = fidelity_index;
    double m = 0;
    for (size_t t = 0; t < r->k->T; t++) m -= r->k->proxy[t][choice[t]] * (1 + 0.3 * sin((double)(t * 7 + choice[t])));
    *metric = m * (0.9 + 0.1 * fidelity);
    return 0;
}

static void run_case(recorder *r, const space_case *k, qc_search_algorithm algorithm, uint64_t seed, int fidelities)
{
    static const double levels[3] = {0.25, 0.5, 1.0};
    memset(r, 0, sizeof *r);
    r->k = k;
    qc_search_space *space = make_space(k);
    TU_EXPECT_OK(qc_search_space_set_check(space, odd_check, r));
    qc_search_options o = QC_SEARCH_OPTIONS_INIT;
    o.algorithm = algorithm, o.seed = seed, o.max_evaluations = 24;
    if (fidelities) o.num_fidelities = 3, o.fidelities = levels;
    qc_search *s = NULL;
    TU_EXPECT_OK(qc_search_create(&s, space, &o, NULL));
    qc_search_space_free(space); /* the search keeps its own copy */
    TU_EXPECT_OK(qc_search_run(s, record_eval, r));
    qc_search_free(s);
}

Test(search, asked_configurations_respect_constraints_and_never_repeat)
{
    static recorder r;
    for (uint64_t seed = 1; seed <= 12; seed++) {
        space_case k = random_case(seed * 104729);
        for (int algorithm = QC_SEARCH_QCORE; algorithm <= QC_SEARCH_ONESHOT_DP; algorithm++)
            for (int fid = 0; fid < 2; fid++) {
                run_case(&r, &k, (qc_search_algorithm)algorithm, seed, fid);
                size_t full = 0;
                for (size_t i = 0; i < r.n; i++) {
                    cr_assert(case_allows(&k, r.asked[i]), "seed %llu algorithm %d: ask %zu breaks a tie or a forbidden pair",
                              (unsigned long long)seed, algorithm, i);
                    cr_assert_neq(r.asked[i][0] + r.asked[i][k.T - 1], 3, "seed %llu algorithm %d: ask %zu fails the check",
                                  (unsigned long long)seed, algorithm, i);
                    full += r.fidelity[i] == (fid ? 2u : 0u);
                    for (size_t j = 0; j < i; j++)
                        cr_assert(r.fidelity[i] != r.fidelity[j] || memcmp(r.asked[i], r.asked[j], k.T * sizeof(uint32_t)) != 0,
                                  "seed %llu algorithm %d: ask %zu repeats ask %zu", (unsigned long long)seed, algorithm, i, j);
                }
                cr_assert_leq(full, 24, "more full evaluations than the budget");
            }
    }
}

/* Records every ask of a synthetic run through ask/tell. */
static size_t ask_sequence(uint64_t seed, uint32_t (*asked)[ST], size_t *fid, int fidelities)
{
    static const double levels[2] = {0.2, 1.0};
    synthetic p;
    make_synthetic(&p, seed);
    qc_search_space *space = synthetic_space(&p);
    qc_search_options o = QC_SEARCH_OPTIONS_INIT;
    o.seed = seed, o.max_evaluations = 20;
    if (fidelities) o.num_fidelities = 2, o.fidelities = levels;
    qc_search *s = NULL;
    TU_EXPECT_OK(qc_search_create(&s, space, &o, NULL));
    size_t n = 0;
    for (;;) {
        int done;
        TU_EXPECT_OK(qc_search_ask(s, asked[n], &fid[n], &done));
        if (done) break;
        double m;
        synthetic_eval(asked[n], fid[n], fidelities ? levels[fid[n]] : 1.0, &m, &p);
        TU_EXPECT_OK(qc_search_tell(s, asked[n], fid[n], m));
        n++;
    }
    qc_search_free(s);
    qc_search_space_free(space);
    return n;
}

Test(search, same_seed_gives_the_same_asks)
{
    static uint32_t a[256][ST], b[256][ST];
    static size_t fa[256], fb[256];
    for (int fid = 0; fid < 2; fid++) {
        size_t na = ask_sequence(3, a, fa, fid), nb = ask_sequence(3, b, fb, fid);
        cr_assert_eq(na, nb, "%zu asks, then %zu", na, nb);
        cr_assert_geq(na, 20, "the search stopped after %zu asks", na);
        cr_assert(memcmp(a, b, na * sizeof a[0]) == 0 && memcmp(fa, fb, na * sizeof fa[0]) == 0,
                  "the asks differ between two runs with the same seed");
    }
}

/* ---- bad input --------------------------------------------------------------------------------- */

Test(search, bad_input_is_refused_precisely)
{
    qc_search_space *s = NULL;
    uint32_t counts[3] = {2, 0, 3};
    TU_EXPECT_FAIL(qc_search_space_create(&s, 0, counts), QC_ERR_INVALID_ARG, "qc_search_space_create", "num_tensors");
    TU_EXPECT_FAIL(qc_search_space_create(&s, 3, counts), QC_ERR_INVALID_ARG, "qc_search_space_create", "num_candidates");
    counts[1] = 2;
    TU_EXPECT_OK(qc_search_space_create(&s, 3, counts));
    TU_EXPECT_FAIL(qc_search_space_set_cost(s, 0, 0, NAN), QC_ERR_NUMERIC, "qc_search_space_set_cost", "cost");
    TU_EXPECT_FAIL(qc_search_space_set_cost(s, 0, 2, 1.0), QC_ERR_INVALID_ARG, "qc_search_space_set_cost", "candidate");
    TU_EXPECT_FAIL(qc_search_space_set_proxy(s, 3, 0, 1.0), QC_ERR_INVALID_ARG, "qc_search_space_set_proxy", "tensor");
    TU_EXPECT_FAIL(qc_search_space_set_proxy(s, 0, 0, -1.0), QC_ERR_INVALID_ARG, "qc_search_space_set_proxy", "loss");
    size_t mixed[2] = {0, 2};
    TU_EXPECT_FAIL(qc_search_space_tie(s, 2, mixed), QC_ERR_INVALID_ARG, "qc_search_space_tie", "tensors");
    size_t twice[2] = {1, 1};
    TU_EXPECT_FAIL(qc_search_space_tie(s, 2, twice), QC_ERR_INVALID_ARG, "qc_search_space_tie", "tensors");
    qc_search_options o = QC_SEARCH_OPTIONS_INIT;
    o.version = 0;
    qc_search *search = NULL;
    TU_EXPECT_FAIL(qc_search_create(&search, s, &o, NULL), QC_ERR_VERSION, "qc_search_create", "opts");
    o = (qc_search_options)QC_SEARCH_OPTIONS_INIT;
    double down[2] = {1.0, 0.5};
    o.num_fidelities = 2, o.fidelities = down;
    TU_EXPECT_FAIL(qc_search_create(&search, s, &o, NULL), QC_ERR_INVALID_ARG, "qc_search_create", "opts");
    TU_EXPECT_OK(qc_search_create(&search, s, NULL, NULL));
    uint32_t choice[3] = {0, 1, 2};
    TU_EXPECT_FAIL(qc_search_tell(search, choice, 0, NAN), QC_ERR_NUMERIC, "qc_search_tell", "metric");
    TU_EXPECT_FAIL(qc_search_tell(search, choice, 1, 0.5), QC_ERR_INVALID_ARG, "qc_search_tell", "fidelity_index");
    choice[2] = 3;
    TU_EXPECT_FAIL(qc_search_tell(search, choice, 0, 0.5), QC_ERR_INVALID_ARG, "qc_search_tell", "choice");
    choice[2] = 2;
    TU_EXPECT_OK(qc_search_tell(search, choice, 0, 0.5));
    TU_EXPECT_FAIL(qc_search_tell(search, choice, 0, 0.5), QC_ERR_INVALID_ARG, "qc_search_tell", NULL);
    qc_search_free(search);
    /* Everything forbidden: tensor 0 has two candidates, both forbidden. */
    size_t t0 = 0;
    uint32_t c0 = 0, c1 = 1;
    TU_EXPECT_OK(qc_search_space_forbid(s, 1, &t0, &c0));
    TU_EXPECT_OK(qc_search_space_forbid(s, 1, &t0, &c1));
    TU_EXPECT_FAIL(qc_search_create(&search, s, NULL, NULL), QC_ERR_INVALID_ARG, "qc_search_create", NULL);
    cr_assert(strstr(qc_last_error(), "forbidden") != NULL, "%s", qc_last_error());
    qc_search_front *f = NULL;
    TU_EXPECT_FAIL(qc_search_dp_front(&f, s, 16), QC_ERR_INVALID_ARG, "qc_search_dp_front", NULL);
    TU_EXPECT_FAIL(qc_search_dp_front(&f, s, 0), QC_ERR_INVALID_ARG, "qc_search_dp_front", "cost_buckets");
    double hv, nan_cost[1] = {NAN}, metric[1] = {1};
    TU_EXPECT_FAIL(qc_search_hypervolume(&hv, nan_cost, metric, 1, 1, 0), QC_ERR_NUMERIC, "qc_search_hypervolume", NULL);
    qc_search_space_free(s);
}

/* The incremental prediction of a single-tensor move equals the full prediction of the moved configuration. */
Test(search, incremental_move_prediction_equals_full_prediction)
{
    synthetic p;
    make_synthetic(&p, 8);
    qc_search_space *space = synthetic_space(&p);
    size_t tied[2] = {2, 5};
    TU_EXPECT_OK(qc_search_space_tie(space, 2, tied));
    qc_search_front *evals = NULL;
    TU_EXPECT_OK(qc__front_create(&evals, ST, "test"));
    uint64_t state = 5;
    uint32_t choice[ST];
    for (int i = 0; i < 12; i++) {
        for (int t = 0; t < ST; t++) choice[t] = (uint32_t)(tu_next(&state) % SC);
        choice[5] = choice[2];
        double m;
        synthetic_eval(choice, 0, 1.0, &m, &p);
        TU_EXPECT_OK(qc__front_push(evals, choice, qc__space_cost(space, choice), m, 0, "test"));
    }
    const double weight[1] = {1.0};
    qc__surrogate sur = {0};
    TU_EXPECT_OK(qc__surrogate_fit(&sur, space, evals, weight, 0.0, 1.0, "test"));
    double g[2 + ST + ST * SC], val[1 + 3 * ST], base_mean, base_var, mean, sd, want_mean, want_sd;
    size_t idx[1 + 3 * ST];
    qc__surrogate_base(&sur, space, choice, g, &base_mean, &base_var);
    for (uint32_t to = 0; to < SC; to++) {
        uint32_t moved[ST];
        memcpy(moved, choice, sizeof moved);
        moved[2] = moved[5] = to;
        qc__surrogate_move(&sur, space, g, base_mean, base_var, tied, 2, choice[2], to, idx, val, &mean, &sd);
        qc__surrogate_predict(&sur, space, moved, &want_mean, &want_sd);
        cr_assert(fabs(mean - want_mean) < 1e-12 && fabs(sd - want_sd) < 1e-9 * (want_sd + 1e-6),
                  "move to %u: (%.15g, %.15g), full prediction (%.15g, %.15g)", to, mean, sd, want_mean, want_sd);
    }
    qc__surrogate_free(&sur);
    qc_search_front_free(evals);
    qc_search_space_free(space);
}

/* ---- prior_width: the surrogate's posterior against a direct dense Bayesian regression ---- */

enum { SP = 2 + ST + ST * SC };

/* Solves a x = b (n x n, overwritten) by Gaussian elimination with partial pivoting. */
static void dense_solve(double *a, double *b, int n)
{
    for (int k = 0; k < n; k++) {
        int piv = k;
        for (int i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > fabs(a[piv * n + k])) piv = i;
        for (int j = 0; j < n; j++) {
            double t = a[k * n + j];
            a[k * n + j] = a[piv * n + j], a[piv * n + j] = t;
        }
        double t = b[k];
        b[k] = b[piv], b[piv] = t;
        for (int i = k + 1; i < n; i++) {
            double f = a[i * n + k] / a[k * n + k];
            for (int j = k; j < n; j++) a[i * n + j] -= f * a[k * n + j];
            b[i] -= f * b[k];
        }
    }
    for (int k = n - 1; k >= 0; k--) {
        for (int j = k + 1; j < n; j++) b[k] -= a[k * n + j] * b[j];
        b[k] /= a[k * n + k];
    }
}

/* The documented model metric = m0 - alpha * proxy - sum_t (scale_t proxy_t + delta_t,c): features. */
static void direct_features(const synthetic *p, const uint32_t *choice, double *x)
{
    memset(x, 0, SP * sizeof *x);
    double sum = 0;
    for (int t = 0; t < ST; t++) sum += p->proxy[t][choice[t]];
    x[0] = 1, x[1] = -sum;
    for (int t = 0; t < ST; t++) x[2 + t] = -p->proxy[t][choice[t]], x[2 + ST + t * SC + choice[t]] = -1;
}

/* Posterior mean of the metric at `at` with the documented prior (surrogate.c) of width w, the fit's own
 * m0, alpha and the fixed noise. */
static double direct_posterior_mean(const synthetic *p, const qc__surrogate *sur, double w, double noise,
                                    const uint32_t *choices, const double *metric, int n, const uint32_t *at)
{
    static double a[SP * SP];
    double b[SP], x[SP], sd[SP], mean_proxy = 0;
    int nonzero = 0;
    for (int t = 0; t < ST; t++)
        for (int c = 0; c < SC; c++)
            if (p->proxy[t][c] > 0) mean_proxy += p->proxy[t][c], nonzero++;
    mean_proxy /= nonzero;
    sd[0] = 10 * (fabs(sur->m0) + 1), sd[1] = 10 * sur->alpha;
    for (int t = 0; t < ST; t++) {
        sd[2 + t] = w * 1.0 * sur->alpha + 1e-12;
        for (int c = 0; c < SC; c++)
            sd[2 + ST + t * SC + c] = sur->alpha * (w * 0.5 * p->proxy[t][c] + 0.01 * mean_proxy) + 1e-12;
    }
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    for (int j = 0; j < SP; j++) a[j * SP + j] = 1 / (sd[j] * sd[j]);
    b[0] = sur->m0 / (sd[0] * sd[0]), b[1] = sur->alpha / (sd[1] * sd[1]);
    for (int i = 0; i < n; i++) {
        direct_features(p, choices + i * ST, x);
        for (int u = 0; u < SP; u++) {
            b[u] += x[u] * metric[i] / (noise * noise);
            for (int v = 0; v < SP; v++) a[u * SP + v] += x[u] * x[v] / (noise * noise);
        }
    }
    dense_solve(a, b, SP);
    direct_features(p, at, x);
    double m = 0;
    for (int u = 0; u < SP; u++) m += x[u] * b[u];
    return m;
}

/* The surrogate's predictions equal the direct posterior of its documented prior at width 1 and 0.5, and
 * the width changes them (a narrower prior keeps the fit closer to the rescaled proxy). */
Test(search, prior_width_scales_the_documented_prior)
{
    synthetic p;
    make_synthetic(&p, 21);
    qc_search_space *space = synthetic_space(&p);
    enum { N = 10 };
    uint32_t choices[N * ST], probe[ST];
    double metric[N];
    uint64_t state = 9;
    qc_search_front *evals = NULL;
    TU_EXPECT_OK(qc__front_create(&evals, ST, "test"));
    for (int i = 0; i < N; i++) {
        for (int t = 0; t < ST; t++) choices[i * ST + t] = (uint32_t)(tu_next(&state) % SC);
        synthetic_eval(choices + i * ST, 0, 1.0, &metric[i], &p);
        TU_EXPECT_OK(qc__front_push(evals, choices + i * ST, qc__space_cost(space, choices + i * ST), metric[i], 0, "test"));
    }
    for (int t = 0; t < ST; t++) probe[t] = (uint32_t)(tu_next(&state) % SC);
    const double weight[1] = {1.0}, noise = 1e-3, widths[2] = {1.0, 0.5};
    double got[2];
    for (int k = 0; k < 2; k++) {
        qc__surrogate sur = {0};
        TU_EXPECT_OK(qc__surrogate_fit(&sur, space, evals, weight, noise, widths[k], "test"));
        double sd, want = direct_posterior_mean(&p, &sur, widths[k], noise, choices, metric, N, probe);
        qc__surrogate_predict(&sur, space, probe, &got[k], &sd);
        cr_assert(fabs(got[k] - want) < 1e-6, "width %g: surrogate %.12g, direct posterior %.12g", widths[k], got[k], want);
        qc__surrogate_free(&sur);
    }
    cr_assert(fabs(got[0] - got[1]) > 1e-5, "width 1 and 0.5 predict the same %.12g", got[0]);
    qc_search_front_free(evals);
    qc_search_space_free(space);
}

/* prior_width is validated (version 2), and 0 is the default width 1: the same run, evaluation by evaluation. */
Test(search, prior_width_validated_and_zero_is_one)
{
    synthetic p;
    make_synthetic(&p, 3);
    qc_search_space *space = synthetic_space(&p);
    qc_search *search = NULL;
    const double bad[3] = {NAN, -0.5, 101};
    for (int i = 0; i < 3; i++) {
        qc_search_options o = QC_SEARCH_OPTIONS_INIT;
        o.prior_width = bad[i];
        TU_EXPECT_FAIL(qc_search_create(&search, space, &o, NULL), QC_ERR_INVALID_ARG, "qc_search_create", "opts");
        cr_assert(strstr(qc_last_error(), "prior_width") != NULL, "%s", qc_last_error());
    }
    qc_search_front *runs[3];
    for (int k = 0; k < 3; k++) {
        qc_search_options o = QC_SEARCH_OPTIONS_INIT;
        o.max_evaluations = 14, o.reference_metric = 0.9;
        o.prior_width = k == 1 ? 1.0 : 0.0;
        if (k == 2) o.version = 1, o.prior_width = NAN; /* past a version-1 struct: not read */
        make_synthetic(&p, 3);
        TU_EXPECT_OK(qc_search_create(&search, space, &o, NULL));
        TU_EXPECT_OK(qc_search_run(search, synthetic_eval, &p));
        TU_EXPECT_OK(qc_search_evaluations(&runs[k], search));
        qc_search_free(search);
    }
    for (int k = 1; k < 3; k++) {
        cr_assert_eq(qc_search_front_size(runs[k]), qc_search_front_size(runs[0]));
        for (size_t i = 0; i < qc_search_front_size(runs[0]); i++) {
            const uint32_t *a, *b;
            double ma, mb;
            TU_EXPECT_OK(qc_search_front_point(runs[0], i, &a, NULL, &ma, NULL));
            TU_EXPECT_OK(qc_search_front_point(runs[k], i, &b, NULL, &mb, NULL));
            cr_assert(memcmp(a, b, ST * sizeof *a) == 0 && ma == mb, "run %d differs at evaluation %zu", k, i);
        }
    }
    for (int k = 0; k < 3; k++) qc_search_front_free(runs[k]);
    qc_search_space_free(space);
}

/* qc_search_options_init(version 1) writes nothing past the version-1 struct (prior_width). */
Test(search, options_init_version_1_stops_before_prior_width)
{
    qc_search_options o;
    memset(&o, 0, sizeof o);
    o.prior_width = 42;
    TU_EXPECT_OK(qc_search_options_init(&o, 1));
    cr_assert_eq(o.version, 1u);
    cr_assert_eq(o.max_evaluations, 32u);
    cr_assert_eq(o.prior_width, 42.0);
    TU_EXPECT_OK(qc_search_options_init(&o, QC_SEARCH_OPTIONS_VERSION));
    cr_assert_eq(o.prior_width, 0.0);
}
