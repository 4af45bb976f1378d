/* CPU features and kernel sets (core/cpu.c, kernels/dispatch.c). The oracle for the feature bits is
 * the compiler's own detection (__builtin_cpu_supports), which also checks the OS-enabled state. */
#include "core/cpu.h"
#include "kernels/dispatch.h"
#include "test_util.h"

static const unsigned avx512_bits = QC_CPU_AVX512F | QC_CPU_AVX512BW | QC_CPU_AVX512VL | QC_CPU_AVX512VPOPCNTDQ |
                                    QC_CPU_AVX512VNNI;

Test(cpu, features_are_stable_and_known)
{
    unsigned f = qc_cpu_features();
    cr_assert_eq(qc_cpu_features(), f, "detected once");
    unsigned known = avx512_bits | QC_CPU_AVX2 | QC_CPU_POPCNT | QC_CPU_AVXVNNI;
    cr_assert_eq(f & ~known, 0u, "only documented bits: 0x%x", f);
}

Test(cpu, avx512_subsets_imply_avx512f)
{
    unsigned f = qc_cpu_features();
    if (f & (avx512_bits & ~(unsigned)QC_CPU_AVX512F))
        cr_assert(f & QC_CPU_AVX512F, "features 0x%x have AVX-512 extensions without AVX512F", f);
}

#if defined(__x86_64__) && defined(__GNUC__)
static void expect_feature(unsigned features, unsigned bit, int compiler_says, const char *name)
{
    cr_assert_eq((features & bit) != 0, compiler_says != 0, "%s: qcore says %d, the compiler's detection %d", name,
                 (features & bit) != 0, compiler_says != 0);
}

Test(cpu, features_agree_with_the_compiler_detection)
{
    __builtin_cpu_init();
    unsigned f = qc_cpu_features();
    expect_feature(f, QC_CPU_POPCNT, __builtin_cpu_supports("popcnt"), "POPCNT");
    expect_feature(f, QC_CPU_AVX2, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), "AVX2+FMA");
    expect_feature(f, QC_CPU_AVX512F, __builtin_cpu_supports("avx512f"), "AVX512F");
    int f512 = __builtin_cpu_supports("avx512f");
    expect_feature(f, QC_CPU_AVX512BW, f512 && __builtin_cpu_supports("avx512bw"), "AVX512BW");
    expect_feature(f, QC_CPU_AVX512VL, f512 && __builtin_cpu_supports("avx512vl"), "AVX512VL");
    expect_feature(f, QC_CPU_AVX512VPOPCNTDQ, f512 && __builtin_cpu_supports("avx512vpopcntdq"), "AVX512VPOPCNTDQ");
    expect_feature(f, QC_CPU_AVX512VNNI, f512 && __builtin_cpu_supports("avx512vnni"), "AVX512VNNI");
}
#endif

Test(cpu, arch_names)
{
    cr_assert_str_eq(qc_arch_string(QC_ARCH_AUTO), "auto");
    cr_assert_str_eq(qc_arch_string(QC_ARCH_REF), "ref");
    cr_assert_str_eq(qc_arch_string(QC_ARCH_AVX2), "avx2");
    cr_assert_str_eq(qc_arch_string(QC_ARCH_AVX512), "avx512");
    cr_assert_str_eq(qc_arch_string((qc_arch)4), "unknown");
    cr_assert_str_eq(qc_arch_string((qc_arch)-1), "unknown");
}

Test(cpu, arch_names_parse_back)
{
    static const qc_arch all[] = {QC_ARCH_AUTO, QC_ARCH_REF, QC_ARCH_AVX2, QC_ARCH_AVX512};
    for (size_t i = 0; i < TU_COUNT(all); i++) {
        qc_arch parsed = (qc_arch)-1;
        cr_assert(qc__arch_from_string(&parsed, qc_arch_string(all[i])));
        cr_assert_eq(parsed, all[i]);
    }
    qc_arch parsed;
    cr_assert_not(qc__arch_from_string(&parsed, "unknown"));
    cr_assert_not(qc__arch_from_string(&parsed, "Ref"));
}

Test(cpu, auto_and_ref_always_run_and_unknown_never)
{
    cr_assert(qc_arch_supported(QC_ARCH_AUTO));
    cr_assert(qc_arch_supported(QC_ARCH_REF));
    cr_assert_not(qc_arch_supported((qc_arch)4));
    cr_assert_not(qc_arch_supported((qc_arch)-1));
}

Test(cpu, optimized_sets_need_their_features)
{
    unsigned f = qc_cpu_features();
    unsigned avx512_need = QC_CPU_AVX512F | QC_CPU_AVX512BW | QC_CPU_AVX512VL;
    cr_assert_eq(qc_arch_supported(QC_ARCH_AVX2), qc__arch_compiled(QC_ARCH_AVX2) && (f & QC_CPU_AVX2));
    cr_assert_eq(qc_arch_supported(QC_ARCH_AVX512),
                 qc__arch_compiled(QC_ARCH_AVX512) && (f & avx512_need) == avx512_need && (f & QC_CPU_AVX2));
}

Test(cpu, best_is_the_widest_supported_set)
{
    qc_arch best = qc_arch_best();
    cr_assert_neq(best, QC_ARCH_AUTO);
    cr_assert(qc_arch_supported(best));
    qc_arch expected = qc_arch_supported(QC_ARCH_AVX512) ? QC_ARCH_AVX512
                       : qc_arch_supported(QC_ARCH_AVX2) ? QC_ARCH_AVX2
                                                         : QC_ARCH_REF;
    cr_assert_eq(best, expected);
}

Test(cpu, kernel_table_of_each_runnable_set_reports_that_set)
{
    for (size_t i = 0; i < TU_COUNT(tu_archs); i++) {
        if (!qc_arch_supported(tu_archs[i])) continue;
        const qc_kernels *k = qc__kernels_for(tu_archs[i]);
        cr_assert_eq(k->arch, tu_archs[i], "table for %s", qc_arch_string(tu_archs[i]));
        cr_assert(k->quantize_f32_bytes && k->dequantize_bytes_f32 && k->fake_quantize_f32);
    }
    cr_assert_eq(qc__kernels_ref.arch, QC_ARCH_REF);
}
