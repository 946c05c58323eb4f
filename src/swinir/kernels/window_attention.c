/* Fused window attention for SwinIR inference on x86-64 CPUs with AVX-512 (fp32).
 *
 * One call handles `count` consecutive windows: for every window and head it computes
 * softmax(scale * q k^T + bias[group]) v with the whole 64x64 score tile kept in L1, reading q, k, v straight
 * out of the qkv projection's output and writing the heads side by side, ready for the output projection.
 * PyTorch's flash kernel reaches ~30 GFLOP/s on these tiny tiles (head dim 30, 64 tokens); this one has no
 * per-tile dispatch, no online-softmax rescaling and no layout copies.
 *
 * Layouts (all contiguous, fp32):
 *   qkv  (windows, n, 3, heads, d)   the nn.Linear(C, 3C) output, C = heads * d
 *   bias (groups, heads, n, n)       relative-position bias (+ shift mask) per window group
 *   group_end (groups,)              cumulative window counts: window i of this call uses the first g with
 *                                    wbase + i < group_end[g] (windows are sorted by shift-mask group)
 *   out  (windows, n, heads, d)
 * Limits: n <= 64 (window 8), d <= 32. The caller checks them.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NMAX 64
#define DMAX 32
#define AI __attribute__((always_inline)) static inline

AI __m512 exp_ps(__m512 x) {
    /* Cephes expf: x = k ln2 + r, |r| <= ln2/2, degree-7 polynomial, 2^k by scalef; ~1 ulp */
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, k);
}

/* dst[c * NMAX + r] = src[r * stride + c] for a 16x16 block; rows >= `rows` and masked-off columns read as 0 */
AI void transpose16(const float *src, int64_t stride, int rows, __mmask16 cols, float *dst) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(cols, src + i * stride) : _mm512_setzero_ps();
    for (int i = 0; i < 16; i += 2) { /* per 128-bit lane: (r_i, r_i+1) interleaved */
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* u[i + k], lane L: rows i..i+3 of column 4L + k */
#define PD(x) _mm512_castps_pd(x)
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(PD(t[i]), PD(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(PD(t[i]), PD(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(PD(t[i + 1]), PD(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(PD(t[i + 1]), PD(t[i + 3])));
#undef PD
    }
    for (int k = 0; k < 4; k++) { /* column 4L + k = lane L of r[k], r[4 + k], r[8 + k], r[12 + k] */
        __m512 a = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x44), b = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x44);
        __m512 c = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xEE), e = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xEE);
        _mm512_store_ps(dst + k * NMAX, _mm512_shuffle_f32x4(a, b, 0x88));
        _mm512_store_ps(dst + (4 + k) * NMAX, _mm512_shuffle_f32x4(a, b, 0xDD));
        _mm512_store_ps(dst + (8 + k) * NMAX, _mm512_shuffle_f32x4(c, e, 0x88));
        _mm512_store_ps(dst + (12 + k) * NMAX, _mm512_shuffle_f32x4(c, e, 0xDD));
    }
}

/* scores for rows i0..i0+3, softmax numerators into p, 1/row sums into inv */
AI void score_rows(const float *qb, int64_t row, float scale, const float *kt, const float *brow, int64_t n,
                   int64_t d, int64_t i0, __mmask16 last, float *p, float *inv) {
    const float *qr[4];
    for (int r = 0; r < 4; r++) qr[r] = qb + (i0 + r < n ? i0 + r : n - 1) * row; /* tail rows: repeat the last */
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
    for (int64_t e = 0; e < d; e++) {
        const float *k = kt + e * NMAX;
        __m512 k0 = _mm512_load_ps(k), k1 = _mm512_load_ps(k + 16), k2 = _mm512_load_ps(k + 32),
               k3 = _mm512_load_ps(k + 48);
        for (int r = 0; r < 4; r++) {
            __m512 q = _mm512_set1_ps(qr[r][e]);
            acc[r][0] = _mm512_fmadd_ps(q, k0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(q, k1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(q, k2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(q, k3, acc[r][3]);
        }
    }
    const __m512 ninf = _mm512_set1_ps(-__builtin_inff()), sc = _mm512_set1_ps(scale);
    for (int r = 0; r < 4 && i0 + r < n; r++) {
        const float *b = brow + (i0 + r) * n;
        __m512 s[4];
        for (int c = 0; c < 4; c++) {
            __mmask16 m = (c + 1) * 16 <= n ? (__mmask16)0xFFFF : (c * 16 < n ? last : 0);
            __m512 bv = _mm512_maskz_loadu_ps(m, b + c * 16);
            s[c] = _mm512_mask_mov_ps(ninf, m, _mm512_fmadd_ps(acc[r][c], sc, bv));
        }
        float mx = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(s[0], s[1]), _mm512_max_ps(s[2], s[3])));
        __m512 mv = _mm512_set1_ps(mx), sum = _mm512_setzero_ps();
        for (int c = 0; c < 4; c++) {
            __mmask16 m = (c + 1) * 16 <= n ? (__mmask16)0xFFFF : (c * 16 < n ? last : 0);
            __m512 ev = _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(s[c], mv)));
            sum = _mm512_add_ps(sum, ev);
            _mm512_store_ps(p + (i0 + r) * NMAX + c * 16, ev);
        }
        inv[i0 + r] = 1.0f / _mm512_reduce_add_ps(sum);
    }
}

/* out rows i0..i0+7 = (p v) / row sum; NV = number of 16-lane chunks of the head dim */
AI void value_rows(const float *p, const float *inv, const float *v, int64_t row, int64_t n, int64_t i0,
                   __mmask16 dm, float *o, int64_t orow, const int NV) {
    __m512 acc[8][2];
    for (int r = 0; r < 8; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j++) {
        const float *vj = v + j * row;
        __m512 v0 = NV == 2 ? _mm512_loadu_ps(vj) : _mm512_maskz_loadu_ps(dm, vj);
        __m512 v1 = NV == 2 ? _mm512_maskz_loadu_ps(dm, vj + 16) : _mm512_setzero_ps();
        for (int r = 0; r < 8; r++) {
            __m512 pr = _mm512_set1_ps(p[(i0 + r) * NMAX + j]);
            acc[r][0] = _mm512_fmadd_ps(pr, v0, acc[r][0]);
            if (NV == 2) acc[r][1] = _mm512_fmadd_ps(pr, v1, acc[r][1]);
        }
    }
    for (int r = 0; r < 8 && i0 + r < n; r++) {
        __m512 s = _mm512_set1_ps(inv[i0 + r]);
        float *dst = o + (i0 + r) * orow;
        if (NV == 2) {
            _mm512_storeu_ps(dst, _mm512_mul_ps(acc[r][0], s));
            _mm512_mask_storeu_ps(dst + 16, dm, _mm512_mul_ps(acc[r][1], s));
        } else {
            _mm512_mask_storeu_ps(dst, dm, _mm512_mul_ps(acc[r][0], s));
        }
    }
}

/* returns 0, or 1 if a thread could not allocate its 64 KB scratch buffer */
int swinir_window_attention_f32(const float *qkv, const float *bias, const int64_t *group_end, int64_t groups,
                                 float *out, int64_t wbase, int64_t count, int64_t n, int64_t heads, int64_t d,
                                 float scale) {
    const int64_t C = heads * d, row = 3 * C;
    const __mmask16 last = (n % 16) ? (__mmask16)((1u << (n % 16)) - 1) : (__mmask16)0xFFFF;
    const int NV = d > 16 ? 2 : 1;
    const __mmask16 dm = (__mmask16)((1u << (d - 16 * (NV - 1))) - 1);
    int failed = 0;
    /* built with -fopenmp and loaded into a process where PyTorch already loaded libgomp.so.1: this uses
       PyTorch's own OpenMP threads (hot after the qkv GEMM), not a second pool competing for the cores */
#pragma omp parallel
    {
        /* k of one window transposed, all heads: kt[(h * d + e) * NMAX + j], padded to 16 columns */
        const int64_t cpad = (C + 15) / 16 * 16;
        float *kt = aligned_alloc(64, (size_t)cpad * NMAX * sizeof(float));
        if (!kt) {
#pragma omp atomic write
            failed = 1;
        }
        float p[NMAX * NMAX] __attribute__((aligned(64)));
        float inv[NMAX];
        memset(p, 0, sizeof p);
#pragma omp for schedule(static)
        for (int64_t w = 0; w < count; w++) {
            if (!kt) continue;
            int64_t g = 0;
            while (g < groups - 1 && wbase + w >= group_end[g]) g++;
            const float *win = qkv + w * n * row;
            for (int64_t j0 = 0; j0 < NMAX; j0 += 16)
                for (int64_t c0 = 0; c0 < C; c0 += 16) {
                    __mmask16 cm = C - c0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - c0)) - 1);
                    int rows = n - j0 >= 16 ? 16 : (n > j0 ? (int)(n - j0) : 0);
                    transpose16(win + j0 * row + C + c0, row, rows, cm, kt + c0 * NMAX + j0);
                }
            for (int64_t h = 0; h < heads; h++) {
                const float *qb = win + h * d, *vb = qb + 2 * C;
                const float *brow = bias + (g * heads + h) * n * n;
                for (int64_t i0 = 0; i0 < n; i0 += 4)
                    score_rows(qb, row, scale, kt + h * d * NMAX, brow, n, d, i0, last, p, inv);
                float *o = out + w * n * C + h * d;
                for (int64_t i0 = 0; i0 < n; i0 += 8) {
                    if (NV == 2) value_rows(p, inv, vb, row, n, i0, dm, o, C, 2);
                    else value_rows(p, inv, vb, row, n, i0, dm, o, C, 1);
                }
            }
        }
        free(kt);
    }
    return failed;
}
