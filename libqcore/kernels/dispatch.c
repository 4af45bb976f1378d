/* The one place where a kernel set is chosen. The x86 tables exist only when meson built those files
 * (QC_HAVE_X86_KERNELS); whether this machine can run them is qc_arch_supported's question. */
#include "core/cpu.h"
#include "kernels/dispatch.h"

int qc__arch_compiled(qc_arch arch)
{
#ifdef QC_HAVE_X86_KERNELS
    return arch == QC_ARCH_AVX2 || arch == QC_ARCH_AVX512 || arch == QC_ARCH_REF;
#else
    return arch == QC_ARCH_REF;
#endif
}

const qc_kernels *qc__kernels_for(qc_arch arch)
{
#ifdef QC_HAVE_X86_KERNELS
    if (arch == QC_ARCH_AVX512) return &qc__kernels_avx512;
    if (arch == QC_ARCH_AVX2) return &qc__kernels_avx2;
#else
    (void)arch;
#endif
    return &qc__kernels_ref;
}

qc_row_gemm_fn qc__popcount_gemm_for(qc_arch arch)
{
    const qc_kernels *k = qc__kernels_for(arch);
    if (k->arch == QC_ARCH_AVX512 && !(qc_cpu_features() & QC_CPU_AVX512VPOPCNTDQ))
        return qc__kernels_for(QC_ARCH_AVX2)->popcount_gemm;
    return k->popcount_gemm;
}

qc_row_gemv_il_fn qc__popcount_gemv_il_for(qc_arch arch)
{
    const qc_kernels *k = qc__kernels_for(arch);
    if (k->arch == QC_ARCH_AVX512 && !(qc_cpu_features() & QC_CPU_AVX512VPOPCNTDQ)) return NULL;
    return k->popcount_gemv_il;
}

qc_row_gemm_fn qc__int8_gemm_for(qc_arch arch)
{
    const qc_kernels *k = qc__kernels_for(arch);
    if (k->arch == QC_ARCH_AVX512 && !(qc_cpu_features() & QC_CPU_AVX512VNNI))
        return qc__kernels_for(QC_ARCH_AVX2)->int8_gemm;
    return k->int8_gemm;
}
