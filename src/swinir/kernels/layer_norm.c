/* LayerNorm over rows of C floats for SwinIR's chunked CPU inference, one source built per ISA (simd.h).
 *
 *   y[r][i] = (x[r][i] - mean_r) / sqrt(var_r + eps) * w[i] + b[i]
 *
 * written as fp32 or, for the bf16 linear that follows it under autocast, straight as bf16. Why: SwinIR's
 * rows are short (48 channels are 3 AVX-512 vectors), so PyTorch's per-row overhead dominates its
 * LayerNorm, and the autocast cast of its output is a second pass over the chunk.
 *
 * Per row (in L1): the mean, then the variance as the mean of squared deviations (two passes, as exact as
 * fp32 sums allow; no E[x^2] - mean^2 cancellation), then the output. Summation order differs from
 * PyTorch's, so fp32 outputs agree to a few ulps. bf16 outputs are rounded to nearest even from the fp32
 * value, as PyTorch's .to(torch.bfloat16) rounds (NaN becomes a quiet NaN).
 *
 * x: (rows, C) contiguous; w, b: (C,) or NULL (no affine); out: (rows, C) fp32 or bf16 (uint16 bits).
 * Rows are split over PyTorch's OpenMP threads when there are enough of them.
 */
#include <math.h>
#include <string.h>

#include "simd.h"

#define PARALLEL_MIN_FLOATS 16384 /* below this, a parallel region costs more than it saves */

#if VL == 16
/* fp32 -> bf16 bits, round to nearest even; n = lanes to store (1..16) */
AI void store_bf16(uint16_t *dst, vf y, int64_t n) {
    __m512i u = _mm512_castps_si512(y);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    r = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(y, y, _CMP_ORD_Q), _mm512_set1_epi32(0x7FC0), r);
    if (n >= 16) {
        _mm256_storeu_si256((__m256i *)dst, _mm512_cvtepi32_epi16(r));
    } else {
        _mm512_mask_cvtepi32_storeu_epi16(dst, vmask_first(n), r);
    }
}
#else
AI void store_bf16(uint16_t *dst, vf y, int64_t n) {
    __m256i u = _mm256_castps_si256(y);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    __m256i ordered = _mm256_castps_si256(_mm256_cmp_ps(y, y, _CMP_ORD_Q));
    r = _mm256_blendv_epi8(_mm256_set1_epi32(0x7FC0), r, ordered);
    /* 8 x int32 (each < 2^16) -> 8 x uint16: pack within 128-bit lanes, then gather the two halves */
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    __m128i lo = _mm256_castsi256_si128(packed);
    if (n >= 8) {
        _mm_storeu_si128((__m128i *)dst, lo);
    } else {
        uint16_t tmp[8];
        _mm_storeu_si128((__m128i *)tmp, lo);
        memcpy(dst, tmp, (size_t)n * sizeof(uint16_t));
    }
}
#endif

/* R consecutive rows at once: their reductions are independent chains, so they overlap in the core (a
 * 48-wide row is 3 vectors, and one row's sum -> mean -> variance -> 1/sqrt chain is mostly latency) */
AI void norm_rows(const float *x, int64_t c, const float *w, const float *b, float eps, void *out, int bf16,
                  const int R) {
    const int64_t full = c / VL * VL;
    const vmask tail = vmask_first(c - full);
    vf s[4], q[4], m[4], rs[4];
    for (int j = 0; j < R; j++) s[j] = vzero();
    for (int64_t i = 0; i < full; i += VL)
        for (int j = 0; j < R; j++) s[j] = vadd(s[j], vload(x + j * c + i));
    if (full < c)
        for (int j = 0; j < R; j++) s[j] = vadd(s[j], vmload(tail, x + j * c + full));
    for (int j = 0; j < R; j++) {
        m[j] = vset1(vhsum(s[j]) / (float)c);
        q[j] = vzero();
    }
    for (int64_t i = 0; i < full; i += VL)
        for (int j = 0; j < R; j++) {
            vf d = vsub(vload(x + j * c + i), m[j]);
            q[j] = vfmadd(d, d, q[j]);
        }
    if (full < c)
        for (int j = 0; j < R; j++) {
            vf d = vselect(tail, vsub(vmload(tail, x + j * c + full), m[j]), vzero());
            q[j] = vfmadd(d, d, q[j]);
        }
    for (int j = 0; j < R; j++) rs[j] = vset1(1.0f / sqrtf(vhsum(q[j]) / (float)c + eps));
    for (int64_t i = 0; i < c; i += VL) {
        const int64_t left = c - i;
        const vmask k = vmask_first(left);
        const vf wv = w ? (left >= VL ? vload(w + i) : vmload(k, w + i)) : vset1(1.0f);
        const vf bv = b ? (left >= VL ? vload(b + i) : vmload(k, b + i)) : vzero();
        for (int j = 0; j < R; j++) {
            const float *xr = x + j * c + i;
            vf y = vfmadd(vmul(vsub(left >= VL ? vload(xr) : vmload(k, xr), m[j]), rs[j]), wv, bv);
            if (bf16) {
                store_bf16((uint16_t *)out + j * c + i, y, left);
            } else if (left >= VL) {
                vstore((float *)out + j * c + i, y);
            } else {
                vmstore((float *)out + j * c + i, k, y);
            }
        }
    }
}

#define ROWS 4
AI void norm_block(const float *x, int64_t rows, int64_t c, const float *w, const float *b, float eps, void *out,
                   int bf16, int64_t r) {
    const int64_t size = bf16 ? 2 : 4;
    char *o = (char *)out + r * c * size;
    if (r + ROWS <= rows) norm_rows(x + r * c, c, w, b, eps, o, bf16, ROWS);
    else
        for (int64_t t = r; t < rows; t++, o += c * size) norm_rows(x + t * c, c, w, b, eps, o, bf16, 1);
}

/* out_bf16: 0 writes fp32 into out, 1 writes bf16 bits */
void swinir_layer_norm_f32(const float *x, int64_t rows, int64_t c, const float *w, const float *b, float eps,
                           void *out, int out_bf16) {
    if (out_bf16) {
#pragma omp parallel for schedule(static) if (rows * c >= PARALLEL_MIN_FLOATS)
        for (int64_t r = 0; r < rows; r += ROWS) norm_block(x, rows, c, w, b, eps, out, 1, r);
    } else {
#pragma omp parallel for schedule(static) if (rows * c >= PARALLEL_MIN_FLOATS)
        for (int64_t r = 0; r < rows; r += ROWS) norm_block(x, rows, c, w, b, eps, out, 0, r);
    }
}
