/* Internal: the thread count of one BLAS or LAPACK call (see threads.c). */
#ifndef QC_LINALG_THREADS_H
#define QC_LINALG_THREADS_H

#include "linalg/linalg.h"

/* Applies `threads` (> 0) to the calling thread's OpenMP setting; returns the previous value. */
int qc__blas_threads_enter(int threads);

/* Restores the value qc__blas_threads_enter returned. */
void qc__blas_threads_leave(int saved);

#endif
