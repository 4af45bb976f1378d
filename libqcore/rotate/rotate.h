/* Internal: the pieces the rotation functions share: finite fields for Paley's constructions, the
 * Hadamard orders qcore can build, and random sign vectors. */
#ifndef QC_ROTATE_INTERNAL_H
#define QC_ROTATE_INTERNAL_H

#include <stdint.h>

#include "qcore/qc_rotate.h"

/* Writes the quadratic character of GF(q) into chi[q] (0 at 0, +1 on non-zero squares, -1 elsewhere) and
 * the field's characteristic into *p; element i is the polynomial whose base-p digits are those of i.
 * Returns 0 when q is not a prime power p^e with e <= 3 (chi is then untouched). */
int qc__galois_character(int8_t *chi, int64_t *p, int64_t q);

/* Index of x_i - x_j in GF(p^e) (digit-wise subtraction modulo p). */
int64_t qc__galois_sub(int64_t i, int64_t j, int64_t p);

/* The factor K of the order n (qc_rotate.h), or 0 when no construction reaches n. */
int64_t qc__hadamard_k(int64_t n);

/* Writes H_K (qc_rotate.h) into h[K*K], row-major, for a K that qc__hadamard_k returned. */
void qc__hadamard_build(int8_t *h, int64_t k);

/* Entry (i, j) of H_n = H_{2^k} (x) H_K, from H_K (hk[K*K]). */
static inline int qc__hadamard_entry(const int8_t *hk, int64_t k, int64_t i, int64_t j)
{
    int sylvester = __builtin_popcountll((unsigned long long)((i / k) & (j / k))) & 1 ? -1 : 1;
    return sylvester * hk[(i % k) * k + j % k];
}

/* The checks every Hadamard entry point shares: K for n, or QC_ERR_UNSUPPORTED / QC_ERR_OVERFLOW naming
 * `name` on behalf of `function`. */
qc_status qc__hadamard_order(int64_t *k, int64_t n, const char *function, const char *name);

/* A C-contiguous f32 or f64 [n, n] output with n >= 1 (errors name 'out' on behalf of `function`). */
qc_status qc__square_output(const qc_tensor *out, const char *function);

/* The n x p matrix a (column-major, p <= n, overwritten) replaced by Q diag(sign(diag R)) of its QR, written
 * row-major into q[n*p]; work holds 2p doubles. */
qc_status qc__sign_corrected_qr(double *a, int64_t n, int64_t p, double *work, double *q,
                                const char *function);

/* d[j] = -1 when the top bit of word j of `stream` under `seed` is set, else +1, for j < n (qc_rotate.h). */
void qc__random_signs(float *d, int64_t n, uint64_t seed, uint64_t stream);

/* max |X^T X - I| of x [n, p] (the optimizer's shape), using the optimizer's scratch. */
double qc__cayley_orthogonality_error(qc_cayley *opt, const double *x, int threads);

#endif
