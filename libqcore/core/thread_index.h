/* Internal: the calling thread's index in the current OpenMP team (0 without OpenMP, as in builds whose
 * compiler has no OpenMP runtime, such as the clang fuzzing build). */
#ifndef QC_CORE_THREAD_INDEX_H
#define QC_CORE_THREAD_INDEX_H

#ifdef _OPENMP
#include <omp.h>
#endif

static inline int qc__thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

#endif
