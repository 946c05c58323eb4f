/* One vector vocabulary for the kernels, so that each .c file is written once and built per ISA:
 * -DSWINIR_ISA_AVX512 (16 floats per vector, mask registers) or -DSWINIR_ISA_AVX2 (8 floats, AVX2 + FMA,
 * masks as integer lane vectors). Every operation below rounds the same on both (IEEE fp32 add, mul, fma,
 * round-to-nearest), so the two builds differ only in summation order.
 */
#ifndef SWINIR_SIMD_H
#define SWINIR_SIMD_H
#include <immintrin.h>
#include <stdint.h>

#define AI __attribute__((always_inline)) static inline

#if defined(SWINIR_ISA_AVX512)
#define VL 16
typedef __m512 vf;
typedef __mmask16 vmask;
AI vmask vmask_first(int64_t n) { return n >= 16 ? (vmask)0xFFFF : (n <= 0 ? (vmask)0 : (vmask)((1u << n) - 1)); }
#define vzero() _mm512_setzero_ps()
#define vset1(x) _mm512_set1_ps(x)
#define vload(p) _mm512_loadu_ps(p)
#define vloada(p) _mm512_load_ps(p)
#define vstore(p, v) _mm512_storeu_ps(p, v)
#define vstorea(p, v) _mm512_store_ps(p, v)
#define vmload(m, p) _mm512_maskz_loadu_ps(m, p)
#define vmstore(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define vselect(m, a, b) _mm512_mask_mov_ps(b, m, a) /* lanes in m from a, others from b */
#define vadd(a, b) _mm512_add_ps(a, b)
#define vsub(a, b) _mm512_sub_ps(a, b)
#define vmul(a, b) _mm512_mul_ps(a, b)
#define vdiv(a, b) _mm512_div_ps(a, b)
#define vmax(a, b) _mm512_max_ps(a, b)
#define vmin(a, b) _mm512_min_ps(a, b)
#define vfmadd(a, b, c) _mm512_fmadd_ps(a, b, c)
#define vfnmadd(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define vround(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vpow2i(k) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23))
#define vhmax(v) _mm512_reduce_max_ps(v)
#define vhsum(v) _mm512_reduce_add_ps(v)
#elif defined(SWINIR_ISA_AVX2)
#define VL 8
typedef __m256 vf;
typedef __m256i vmask;
AI vmask vmask_first(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n > 8 ? 8 : n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#define vzero() _mm256_setzero_ps()
#define vset1(x) _mm256_set1_ps(x)
#define vload(p) _mm256_loadu_ps(p)
#define vloada(p) _mm256_load_ps(p)
#define vstore(p, v) _mm256_storeu_ps(p, v)
#define vstorea(p, v) _mm256_store_ps(p, v)
#define vmload(m, p) _mm256_maskload_ps(p, m)
#define vmstore(p, m, v) _mm256_maskstore_ps(p, m, v)
#define vselect(m, a, b) _mm256_blendv_ps(b, a, _mm256_castsi256_ps(m))
#define vadd(a, b) _mm256_add_ps(a, b)
#define vsub(a, b) _mm256_sub_ps(a, b)
#define vmul(a, b) _mm256_mul_ps(a, b)
#define vdiv(a, b) _mm256_div_ps(a, b)
#define vmax(a, b) _mm256_max_ps(a, b)
#define vmin(a, b) _mm256_min_ps(a, b)
#define vfmadd(a, b, c) _mm256_fmadd_ps(a, b, c)
#define vfnmadd(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define vround(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vpow2i(k) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23))
AI float vhmax(vf v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
AI float vhsum(vf v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#else
#error "build with -DSWINIR_ISA_AVX512 or -DSWINIR_ISA_AVX2"
#endif

/* Cephes expf for x <= 0 (softmax after subtracting the row max): x = k ln2 + r, |r| <= ln2/2, degree-7
 * polynomial, times 2^k (k >= -126 after the clamp); ~1 ulp. AVX-512 scales by 2^k in one instruction
 * (scalef); AVX2 rounds x log2(e) with the 1.5 * 2^23 shifter, whose low mantissa bits then hold k + 127
 * for the exponent field (2 instructions fewer than round, convert, add). */
AI vf vexp_body(vf x);
AI vf vexp(vf x) { return vexp_body(vmax(x, vset1(-87.3f))); }
/* for finite x only (no -inf): AVX-512 drops the clamp (one instruction of ~15; below -87.3 scalef then
 * underflows to 0 under FTZ where the clamp gave ~1e-38); AVX2's exponent bits need it */
#if VL == 16
AI vf vexp_finite(vf x) { return vexp_body(x); }
#else
#define vexp_finite vexp
#endif
AI vf vexp_body(vf x) {
#if VL == 16
    vf k = vround(vmul(x, vset1(1.44269504088896341f)));
#else
    const vf shifter = vset1(12583039.0f); /* 1.5 * 2^23 + 127 */
    vf kb = vfmadd(x, vset1(1.44269504088896341f), shifter);
    vf k = vsub(kb, shifter);
#endif
    vf r = vfnmadd(k, vset1(0.693359375f), x);
    r = vfnmadd(k, vset1(-2.12194440e-4f), r);
    vf p = vset1(1.9875691500e-4f);
    p = vfmadd(p, r, vset1(1.3981999507e-3f));
    p = vfmadd(p, r, vset1(8.3334519073e-3f));
    p = vfmadd(p, r, vset1(4.1665795894e-2f));
    p = vfmadd(p, r, vset1(1.6666665459e-1f));
    p = vfmadd(p, r, vset1(5.0000001201e-1f));
    p = vfmadd(p, vmul(r, r), vadd(r, vset1(1.0f)));
#if VL == 16
    return _mm512_scalef_ps(p, k);
#else
    return vmul(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(kb), 23)));
#endif
}
#endif
