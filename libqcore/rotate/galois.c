/* Small finite fields GF(p^e), e <= 3, for the Jacobsthal matrices of Paley's constructions. GF(p^e) is
 * GF(p)[t]/(f) for a monic f of degree e without roots in GF(p), which for e <= 3 is the same as
 * irreducible. Only squaring is needed: the character is read off the set of squares. */
#include <string.h>

#include "rotate/rotate.h"

enum { MAX_E = 3 };

static int64_t smallest_prime_factor(int64_t q)
{
    for (int64_t d = 2; d * d <= q; d++)
        if (q % d == 0) return d;
    return q;
}

/* e with q = p^e, or 0 when q is not a power of p. */
static int power_of(int64_t q, int64_t p)
{
    int e = 0;
    for (; q > 1; e++) {
        if (q % p) return 0;
        q /= p;
    }
    return e;
}

static int64_t poly_value(const int64_t *f, int e, int64_t x, int64_t p)
{
    int64_t v = 1; /* monic */
    for (int d = e - 1; d >= 0; d--) v = (v * x + f[d]) % p;
    return v;
}

/* The coefficients f[0..e-1] of the first monic polynomial of degree e (in base-p order) without roots. */
static void find_modulus(int64_t *f, int e, int64_t p)
{
    for (int64_t code = 0;; code++) {
        int64_t c = code;
        for (int d = 0; d < e; d++, c /= p) f[d] = c % p;
        int has_root = 0;
        for (int64_t x = 0; x < p && !has_root; x++) has_root = poly_value(f, e, x, p) == 0;
        if (!has_root) return;
    }
}

/* The square of element a (digits a[0..e-1]) modulo f, as an element index. */
static int64_t square_index(const int64_t *a, const int64_t *f, int e, int64_t p)
{
    int64_t prod[2 * MAX_E - 1] = {0};
    for (int i = 0; i < e; i++)
        for (int j = 0; j < e; j++) prod[i + j] = (prod[i + j] + a[i] * a[j]) % p;
    /* t^e = -(f[0] + ... + f[e-1] t^(e-1)): fold the high coefficients down. */
    for (int d = 2 * e - 2; d >= e; d--)
        for (int i = 0; i < e; i++) prod[d - e + i] = ((prod[d - e + i] - prod[d] * f[i]) % p + p) % p;
    int64_t index = 0;
    for (int d = e - 1; d >= 0; d--) index = index * p + prod[d];
    return index;
}

int qc__galois_character(int8_t *chi, int64_t *p, int64_t q)
{
    if (q < 2) return 0;
    int64_t prime = smallest_prime_factor(q);
    int e = power_of(q, prime);
    if (e == 0 || e > MAX_E) return 0;
    int64_t f[MAX_E] = {0};
    if (e > 1) find_modulus(f, e, prime); /* GF(p) itself needs no modulus (and degree 1 always has a root) */
    memset(chi, -1, (size_t)q);
    chi[0] = 0;
    for (int64_t x = 1; x < q; x++) {
        int64_t digits[MAX_E], c = x;
        for (int d = 0; d < e; d++, c /= prime) digits[d] = c % prime;
        chi[square_index(digits, f, e, prime)] = 1;
    }
    *p = prime;
    return 1;
}

int64_t qc__galois_sub(int64_t i, int64_t j, int64_t p)
{
    int64_t index = 0, place = 1;
    for (; i > 0 || j > 0; i /= p, j /= p, place *= p) index += ((i % p - j % p + p) % p) * place;
    return index;
}
