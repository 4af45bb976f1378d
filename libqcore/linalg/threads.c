/* OpenBLAS's OpenMP build sizes its team from the calling thread's OpenMP setting, read at each call: the
 * wrappers set the context's count around a call and restore the caller's afterwards. */
#include <limits.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "linalg/threads.h"

int qc__linalg_fits(const int64_t *extents, int n)
{
    for (int i = 0; i < n; i++)
        if (extents[i] < 0 || extents[i] > INT_MAX) return 0;
    return 1;
}

int qc__blas_threads_enter(int threads)
{
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    if (threads > 0) omp_set_num_threads(threads);
    return saved;
#else
    (void)threads;
    return 1;
#endif
}

void qc__blas_threads_leave(int saved)
{
#ifdef _OPENMP
    omp_set_num_threads(saved);
#else
    (void)saved;
#endif
}
