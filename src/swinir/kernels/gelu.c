/* The exact (erf) GELU in place over fp32 values, for fc1's output where oneDNN's GELU post-op is not used
 * (its AVX2 code made fc1 slower than the GEMM plus a separate GELU). One source built per ISA (simd.h).
 *
 *   gelu(x) = x (1 + erf(x / sqrt 2)) / 2
 *
 * erf(z) = z P(z^2) / Q(z^2) on z clamped to [-4, 4], and exactly +-1 from |z| = 3.9 on (erf(3.9) is 1 - 3.5e-8,
 * which rounds to 1 in fp32), P of degree 6 and Q of degree 4:
 * the rational approximation of Eigen's fast float erf (absolute error 6.5e-8 in exact arithmetic, ~4e-7
 * evaluated in fp32), 1 / Q by the reciprocal estimate and a Newton step. Why: about half the multiply-adds of
 * the Abramowitz-Stegun form with its exp, which PyTorch's vectorised erf evaluates (PyTorch's GELU took
 * ~0.9 ns per value in the model on AMD Zen 4 capped at AVX2, 4% of a classical x2 forward).
 * Values are split over PyTorch's OpenMP threads when there are enough of them.
 */
#include <stdint.h>

#include "simd.h"

#define GELU_PARALLEL_MIN 65536 /* values below which one thread does it all */
#define GELU_BLOCK 8192         /* values per OpenMP work item */

AI vf gelu_vec(vf x) {
    const vf z = vmax(vmin(vmul(x, vset1(0.70710678118654752f)), vset1(4.0f)), vset1(-4.0f)); /* NaN -> 4 */
    const vf z2 = vmul(z, z);
    vf p = vfmadd(vset1(-2.72614225801306e-10f), z2, vset1(2.77068142495902e-08f));
    p = vfmadd(p, z2, vset1(-2.10102402082508e-06f));
    p = vfmadd(p, z2, vset1(-5.69250639462346e-05f));
    p = vfmadd(p, z2, vset1(-7.34990630326855e-04f));
    p = vfmadd(p, z2, vset1(-2.95459980854025e-03f));
    p = vfmadd(p, z2, vset1(-1.60960333262415e-02f));
    vf q = vfmadd(vset1(-1.45660718464996e-05f), z2, vset1(-2.13374055278905e-04f));
    q = vfmadd(q, z2, vset1(-1.68282697438203e-03f));
    q = vfmadd(q, z2, vset1(-7.37332916720468e-03f));
    q = vfmadd(q, z2, vset1(-1.42647390514189e-02f));
#if VL == 16
    vf r = _mm512_rcp14_ps(q);
#else
    vf r = _mm256_rcp_ps(q);
    r = vmul(r, vfnmadd(q, r, vset1(2.0f))); /* Newton steps: 12 -> 23 -> 24 bits */
#endif
    r = vmul(r, vfnmadd(q, r, vset1(2.0f)));
    vf erf = vmul(vmul(z, p), r);
    /* |z| >= 3.9: erf is +-1 in fp32; exactly, so that gelu(x) is 0 for large negative x (the rational
     * gives 1 - 6e-8 at 4, which x would scale up) */
    const vf x_over_sqrt2 = vmul(x, vset1(0.70710678118654752f)), one = vset1(1.0f);
#if VL == 16
    erf = _mm512_mask_mov_ps(erf, _mm512_cmp_ps_mask(x_over_sqrt2, vset1(3.9f), _CMP_GE_OQ), one);
    erf = _mm512_mask_mov_ps(erf, _mm512_cmp_ps_mask(x_over_sqrt2, vset1(-3.9f), _CMP_LE_OQ), vsub(vzero(), one));
#else
    erf = _mm256_blendv_ps(erf, one, _mm256_cmp_ps(x_over_sqrt2, vset1(3.9f), _CMP_GE_OQ));
    erf = _mm256_blendv_ps(erf, vsub(vzero(), one), _mm256_cmp_ps(x_over_sqrt2, vset1(-3.9f), _CMP_LE_OQ));
#endif
    const vf half_x = vmul(x, vset1(0.5f));
    return vfmadd(half_x, erf, half_x);
}

static void gelu_span(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 2 * VL <= n; i += 2 * VL) { /* two independent chains per iteration */
        const vf a = gelu_vec(vload(x + i)), b = gelu_vec(vload(x + i + VL));
        vstore(x + i, a);
        vstore(x + i + VL, b);
    }
    for (; i < n; i += VL) {
        const vmask k = vmask_first(n - i);
        vmstore(x + i, k, gelu_vec(vmload(k, x + i)));
    }
}

void swinir_gelu(float *x, int64_t n) {
    const int64_t blocks = (n + GELU_BLOCK - 1) / GELU_BLOCK;
#pragma omp parallel for schedule(static) if (n >= GELU_PARALLEL_MIN)
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t first = b * GELU_BLOCK, left = n - first;
        gelu_span(x + first, left < GELU_BLOCK ? left : GELU_BLOCK);
    }
}
