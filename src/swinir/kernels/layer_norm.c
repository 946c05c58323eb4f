/* LayerNorm over rows of C floats for SwinIR's chunked CPU inference, one source built per ISA (simd.h).
 *
 *   y[r][i] = (x[r][i] - mean_r) / sqrt(var_r + eps) * w[i] + b[i]
 *
 * written as fp32 or, for the bf16 linear that follows it under autocast, straight as bf16. Why: SwinIR's
 * rows are short (48 channels are 3 AVX-512 vectors), so PyTorch's per-row overhead dominates its
 * LayerNorm, and the autocast cast of its output is a second pass over the chunk.
 *
 * Per row (in L1): the mean, then the variance as the mean of squared deviations, whose sum also corrects
 * the mean's rounding (the corrected two-pass algorithm: no E[x^2] - mean^2 cancellation, rows far from
 * zero keep their precision), then the output; four rows at a time. Summation order differs from
 * PyTorch's, so fp32 outputs agree to a few ulps. bf16 outputs are rounded to nearest even from the fp32
 * value, as PyTorch's .to(torch.bfloat16) rounds (NaN becomes a quiet NaN).
 *
 * x: (rows, C) contiguous fp32 or bf16 (under bf16 autocast the residual stream is bf16; it is widened
 * to fp32 as it is read, as PyTorch's LayerNorm does); w, b: fp32 (C,) or NULL (no affine); out: (rows, C)
 * fp32 or bf16 (uint16 bits).
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

/* n (1..VL) floats of row p, as fp32 (bf16 bits widened: bf16 is the top half of an fp32); lanes >= n are 0 */
AI vf load_row(const void *p, int64_t i, int64_t n, int bf16) {
    if (!bf16) return n >= VL ? vload((const float *)p + i) : vmload(vmask_first(n), (const float *)p + i);
    const uint16_t *q = (const uint16_t *)p + i;
    uint16_t tmp[VL];
    if (n < VL) { /* no 16-bit masked loads below AVX512BW */
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, q, (size_t)n * sizeof(uint16_t));
        q = tmp;
    }
#if VL == 16
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)q)), 16));
#else
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)q)), 16));
#endif
}

/* R consecutive rows at once: their reductions are independent chains, so they overlap in the core (a
 * 48-wide row is 3 vectors, and one row's sum -> mean -> variance -> 1/sqrt chain is mostly latency) */
AI void norm_rows(const void *xv, int64_t c, const float *w, const float *b, float eps, void *out, int in_bf16,
                  int bf16, const int R) {
    const char *x = (const char *)xv;
    const int64_t xrow = c * (in_bf16 ? 2 : 4);
    const int64_t full = c / VL * VL;
    const vmask tail = vmask_first(c - full);
    vf s[4], q[4], e[4], m[4], rs[4];
    for (int j = 0; j < R; j++) s[j] = vzero();
    for (int64_t i = 0; i < full; i += VL)
        for (int j = 0; j < R; j++) s[j] = vadd(s[j], load_row(x + j * xrow, i, VL, in_bf16));
    if (full < c)
        for (int j = 0; j < R; j++) s[j] = vadd(s[j], load_row(x + j * xrow, full, c - full, in_bf16));
    for (int j = 0; j < R; j++) {
        m[j] = vset1(vhsum(s[j]) / (float)c);
        q[j] = e[j] = vzero();
    }
    for (int64_t i = 0; i < full; i += VL)
        for (int j = 0; j < R; j++) {
            vf d = vsub(load_row(x + j * xrow, i, VL, in_bf16), m[j]);
            q[j] = vfmadd(d, d, q[j]);
            e[j] = vadd(e[j], d);
        }
    if (full < c)
        for (int j = 0; j < R; j++) {
            vf d = vselect(tail, vsub(load_row(x + j * xrow, full, c - full, in_bf16), m[j]), vzero());
            q[j] = vfmadd(d, d, q[j]);
            e[j] = vadd(e[j], d);
        }
    for (int j = 0; j < R; j++) { /* the corrected two-pass: the deviations' sum fixes the mean's rounding */
        const float corr = vhsum(e[j]) / (float)c, var = vhsum(q[j]) / (float)c - corr * corr;
        m[j] = vadd(m[j], vset1(corr));
        rs[j] = vset1(1.0f / sqrtf((var > 0.0f ? var : 0.0f) + eps));
    }
    for (int64_t i = 0; i < c; i += VL) {
        const int64_t left = c - i;
        const vmask k = vmask_first(left);
        const vf wv = w ? (left >= VL ? vload(w + i) : vmload(k, w + i)) : vset1(1.0f);
        const vf bv = b ? (left >= VL ? vload(b + i) : vmload(k, b + i)) : vzero();
        for (int j = 0; j < R; j++) {
            vf y = vfmadd(vmul(vsub(load_row(x + j * xrow, i, left, in_bf16), m[j]), rs[j]), wv, bv);
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
#define STAGE_MAX 1024 /* bf16 rows up to this wide are widened to fp32 once (not in each of the 3 passes) */

/* n bf16 values -> fp32 */
AI void widen(const uint16_t *src, int64_t n, float *dst) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL) vstore(dst + i, load_row(src, i, VL, 1));
    for (; i < n; i++) {
        const uint32_t u = (uint32_t)src[i] << 16;
        memcpy(dst + i, &u, sizeof u);
    }
}

/* n contiguous floats: y += add (the residual, added in place) */
AI void add_in_place(float *y, const float *add, int64_t n) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL) vstore(y + i, vadd(vload(y + i), vload(add + i)));
    for (; i < n; i++) y[i] += add[i];
}

/* `add` (fp32 rows or NULL): added into x's rows in place first (x is then fp32), and the sum normalised */
AI void norm_block(const void *x, int64_t rows, int64_t c, const float *w, const float *b, float eps, void *out,
                   int in_bf16, int bf16, int64_t r, const float *add) {
    const int64_t xrow = c * (in_bf16 ? 2 : 4), orow = c * (bf16 ? 2 : 4), n = rows - r < ROWS ? rows - r : ROWS;
    const char *xr = (const char *)x + r * xrow;
    char *o = (char *)out + r * orow;
    if (r + ROWS < rows) /* the next block's rows come in while this one computes (6-8% faster in the model) */
        for (int64_t at = 0; at < ROWS * xrow; at += 64) __builtin_prefetch(xr + ROWS * xrow + at, 0, 3);
    if (add) add_in_place((float *)xr, add + r * c, n * c);
    float staged[ROWS * STAGE_MAX] __attribute__((aligned(64)));
    if (in_bf16 && c <= STAGE_MAX) { /* the block's rows are contiguous: widen them in one go */
        widen((const uint16_t *)xr, n * c, staged);
        xr = (const char *)staged;
        in_bf16 = 0;
    }
    const int64_t step = c * (in_bf16 ? 2 : 4);
    if (n == ROWS) norm_rows(xr, c, w, b, eps, o, in_bf16, bf16, ROWS);
    else
        for (int64_t t = 0; t < n; t++, xr += step, o += orow) norm_rows(xr, c, w, b, eps, o, in_bf16, bf16, 1);
}

/* x: fp32 rows (in_bf16 0) or bf16 bits (1); out: fp32 (out_bf16 0) or bf16 bits (1) */
void swinir_layer_norm(const void *x, int64_t rows, int64_t c, const float *w, const float *b, float eps, void *out,
                       int in_bf16, int out_bf16) {
#define LN_CASE(IN, OUT)                                                                                    \
    _Pragma("omp parallel for schedule(static) if (rows * c >= PARALLEL_MIN_FLOATS)")                     \
    for (int64_t r = 0; r < rows; r += ROWS) norm_block(x, rows, c, w, b, eps, out, IN, OUT, r, NULL)
    if (in_bf16 && out_bf16) LN_CASE(1, 1);
    else if (in_bf16) LN_CASE(1, 0);
    else if (out_bf16) LN_CASE(0, 1);
    else LN_CASE(0, 0);
#undef LN_CASE
}

/* x += add (fp32 rows, in place), then out = LayerNorm(x) (fp32 or bf16 bits): a residual add and the
 * pre-norm after it in one pass over the rows while they are in L1 (the output projection's residual and
 * norm2 of SwinIR's and HAT's blocks) */
void swinir_add_layer_norm(float *x, const float *add, int64_t rows, int64_t c, const float *w, const float *b,
                           float eps, void *out, int out_bf16) {
#define ADD_LN_CASE(OUT)                                                                                    \
    _Pragma("omp parallel for schedule(static) if (rows * c >= PARALLEL_MIN_FLOATS)")                     \
    for (int64_t r = 0; r < rows; r += ROWS) norm_block(x, rows, c, w, b, eps, out, 0, OUT, r, add)
    if (out_bf16) ADD_LN_CASE(1);
    else ADD_LN_CASE(0);
#undef ADD_LN_CASE
}
