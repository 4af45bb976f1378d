/* Hadamard matrices by construction (qc_rotate.h): Sylvester, Paley I and II over GF(q), and Kronecker
 * products, for the factor K of an order n = K * 2^k. */
#include "rotate/rotate.h"

/* Kronecker factors are at least 12 (the least order that is not a power of 2), so each is at most K / 12. */
enum { MAX_FACTOR = QC_HADAMARD_MAX_K / 12 };

typedef enum { NONE, SYLVESTER, PALEY_I, PALEY_II, KRONECKER } construction;

static int is_power_of_two(int64_t k)
{
    return k > 0 && (k & (k - 1)) == 0;
}

static int is_prime_power(int64_t q)
{
    int8_t chi[2 * QC_HADAMARD_MAX_K];
    int64_t p;
    return q >= 2 && q < 2 * QC_HADAMARD_MAX_K && qc__galois_character(chi, &p, q);
}

/* How H_k is built; for KRONECKER, *factor receives the smaller factor a (k = a * b). */
static construction choose(int64_t k, int64_t *factor)
{
    if (is_power_of_two(k)) return SYLVESTER;
    if (k % 4) return NONE; /* Hadamard orders above 2 are multiples of 4 */
    if (is_prime_power(k - 1) && (k - 1) % 4 == 3) return PALEY_I;
    if (is_prime_power(k / 2 - 1) && (k / 2 - 1) % 4 == 1) return PALEY_II;
    for (int64_t a = 12; a * a <= k; a += 4) {
        int64_t unused;
        if (k % a || is_power_of_two(a) || is_power_of_two(k / a)) continue;
        if (choose(a, &unused) != NONE && choose(k / a, &unused) != NONE) {
            *factor = a;
            return KRONECKER;
        }
    }
    return NONE;
}

int64_t qc__hadamard_k(int64_t n)
{
    if (n < 1) return 0;
    int64_t odd = n;
    while (odd % 2 == 0) odd /= 2;
    if (odd == 1) return 1;
    for (int64_t k = odd; k <= QC_HADAMARD_MAX_K && n % k == 0; k *= 2) {
        int64_t unused;
        if (choose(k, &unused) != NONE) return k;
    }
    return 0;
}

static void sylvester(int8_t *h, int64_t k)
{
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) h[i * k + j] = __builtin_popcountll((unsigned long long)(i & j)) & 1 ? -1 : 1;
}

/* The conference core of order q + 1: [[0, 1^T], [border, Q]], Q the Jacobsthal matrix of GF(q). Paley I
 * uses border -1 (a skew matrix, q = 3 mod 4), Paley II border +1 (symmetric, q = 1 mod 4). */
static void conference(int8_t *c, int64_t q, int border)
{
    int8_t chi[2 * QC_HADAMARD_MAX_K];
    int64_t p, m = q + 1;
    qc__galois_character(chi, &p, q);
    c[0] = 0;
    for (int64_t i = 1; i < m; i++) {
        c[i] = 1;
        c[i * m] = (int8_t)border;
        for (int64_t j = 1; j < m; j++) c[i * m + j] = chi[qc__galois_sub(j - 1, i - 1, p)];
    }
}

/* H = I + S for the skew conference matrix S. */
static void paley_i(int8_t *h, int64_t k)
{
    conference(h, k - 1, -1);
    for (int64_t i = 0; i < k; i++) h[i * k + i] += 1;
}

/* Each entry of the symmetric conference matrix C becomes a 2x2 block: 0 -> [[1, 1], [1, -1]],
 * c = +-1 -> c [[1, -1], [-1, -1]]. */
static void paley_ii(int8_t *h, int64_t k)
{
    static const int8_t zero_block[4] = {1, 1, 1, -1}, sign_block[4] = {1, -1, -1, -1};
    int64_t m = k / 2;
    int8_t c[(QC_HADAMARD_MAX_K / 2) * (QC_HADAMARD_MAX_K / 2)];
    conference(c, m - 1, 1);
    for (int64_t r = 0; r < m; r++)
        for (int64_t col = 0; col < m; col++)
            for (int s = 0; s < 2; s++)
                for (int t = 0; t < 2; t++) {
                    int8_t v = c[r * m + col];
                    h[(2 * r + s) * k + 2 * col + t] = v == 0 ? zero_block[2 * s + t] : (int8_t)(v * sign_block[2 * s + t]);
                }
}

static void kronecker(int8_t *h, int64_t a, int64_t b)
{
    int8_t ha[MAX_FACTOR * MAX_FACTOR], hb[MAX_FACTOR * MAX_FACTOR];
    qc__hadamard_build(ha, a);
    qc__hadamard_build(hb, b);
    for (int64_t i = 0; i < a * b; i++)
        for (int64_t j = 0; j < a * b; j++)
            h[i * a * b + j] = (int8_t)(ha[(i / b) * a + j / b] * hb[(i % b) * b + j % b]);
}

void qc__hadamard_build(int8_t *h, int64_t k)
{
    int64_t a = 0;
    switch (choose(k, &a)) {
    case SYLVESTER: sylvester(h, k); break;
    case PALEY_I: paley_i(h, k); break;
    case PALEY_II: paley_ii(h, k); break;
    case KRONECKER: kronecker(h, a, k / a); break;
    case NONE: break; /* callers pass only orders qc__hadamard_k returned */
    }
}
