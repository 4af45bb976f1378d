/* CPU feature detection: CPUID bits, confirmed by the OS having enabled the register state (XCR0),
 * since a CPU may support AVX-512 while the kernel does not save ZMM registers. */
#include "core/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void)
{
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

enum {
    XCR0_AVX_STATE = 0x6,      /* XMM and YMM */
    XCR0_AVX512_STATE = 0xE6,  /* plus opmask, ZMM_Hi256, Hi16_ZMM */
};

static unsigned detect_features(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    unsigned features = 0;
    if (c & (1u << 23)) features |= QC_CPU_POPCNT;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx) return features;
    uint64_t xcr0 = read_xcr0();
    if ((xcr0 & XCR0_AVX_STATE) != XCR0_AVX_STATE) return features;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return features;
    if (((b >> 5) & 1) && fma) features |= QC_CPU_AVX2;
    unsigned leaf7_ebx = b, leaf7_ecx = c;
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1)) features |= QC_CPU_AVXVNNI;
    if ((xcr0 & XCR0_AVX512_STATE) != XCR0_AVX512_STATE) return features;
    if (leaf7_ebx & (1u << 16)) features |= QC_CPU_AVX512F;
    if (leaf7_ebx & (1u << 30)) features |= QC_CPU_AVX512BW;
    if (leaf7_ebx & (1u << 31)) features |= QC_CPU_AVX512VL;
    if (leaf7_ecx & (1u << 14)) features |= QC_CPU_AVX512VPOPCNTDQ;
    if (leaf7_ecx & (1u << 11)) features |= QC_CPU_AVX512VNNI;
    if (!(features & QC_CPU_AVX512F)) features &= ~(unsigned)(QC_CPU_AVX512BW | QC_CPU_AVX512VL |
                                                             QC_CPU_AVX512VPOPCNTDQ | QC_CPU_AVX512VNNI);
    return features;
}
#else
static unsigned detect_features(void)
{
    return 0;
}
#endif

unsigned qc_cpu_features(void)
{
    /* Racing first calls compute the same value, so a plain static is enough. */
    static unsigned features;
    static int known;
    if (!__atomic_load_n(&known, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&features, detect_features(), __ATOMIC_RELAXED);
        __atomic_store_n(&known, 1, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&features, __ATOMIC_RELAXED);
}

const char *qc_arch_string(qc_arch arch)
{
    switch (arch) {
    case QC_ARCH_AUTO: return "auto";
    case QC_ARCH_REF: return "ref";
    case QC_ARCH_AVX2: return "avx2";
    case QC_ARCH_AVX512: return "avx512";
    }
    return "unknown";
}

int qc__arch_from_string(qc_arch *out, const char *name)
{
    static const qc_arch all[] = {QC_ARCH_AUTO, QC_ARCH_REF, QC_ARCH_AVX2, QC_ARCH_AVX512};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, qc_arch_string(all[i])) == 0) {
            *out = all[i];
            return 1;
        }
    }
    return 0;
}

static unsigned required_features(qc_arch arch)
{
    switch (arch) {
    case QC_ARCH_AVX2: return QC_CPU_AVX2;
    case QC_ARCH_AVX512: return QC_CPU_AVX2 | QC_CPU_AVX512F | QC_CPU_AVX512BW | QC_CPU_AVX512VL;
    default: return 0;
    }
}

int qc_arch_supported(qc_arch arch)
{
    if (arch == QC_ARCH_AUTO || arch == QC_ARCH_REF) return 1;
    if (arch != QC_ARCH_AVX2 && arch != QC_ARCH_AVX512) return 0;
    if (!qc__arch_compiled(arch)) return 0;
    unsigned need = required_features(arch);
    return (qc_cpu_features() & need) == need;
}

qc_arch qc_arch_best(void)
{
    if (qc_arch_supported(QC_ARCH_AVX512)) return QC_ARCH_AVX512;
    if (qc_arch_supported(QC_ARCH_AVX2)) return QC_ARCH_AVX2;
    return QC_ARCH_REF;
}
