/* Fused window attention for SwinIR inference on x86-64 CPUs (fp32), one source built per ISA (simd.h).
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
 *
 * Register blocking per ISA (32 vector registers on AVX-512, 16 on AVX2): scores in SROWS x SCVEC-vector
 * tiles, p v in RV rows x NV vectors (NV = vectors per head dim).
 */
#include <stdlib.h>
#include <string.h>

#include "simd.h"

#define NMAX 64
#define DMAX 32
#if VL == 16
#define SROWS 4
#define SCVEC 4
#else
#define SROWS 6
#define SCVEC 2
#endif

#if VL == 16
/* dst[c * NMAX + r] = src[r * stride + c] for a 16x16 block; rows >= `rows` and masked-off columns read as 0 */
AI void transpose_block(const float *src, int64_t stride, int rows, vmask cols, float *dst) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = i < rows ? vmload(cols, src + i * stride) : vzero();
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
#else
/* the same for an 8x8 block */
AI void transpose_block(const float *src, int64_t stride, int rows, vmask cols, float *dst) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = i < rows ? vmload(cols, src + i * stride) : vzero();
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) { /* r[i + k], lane L: rows i..i+3 of column 4L + k */
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {
        _mm256_store_ps(dst + k * NMAX, _mm256_permute2f128_ps(r[k], r[4 + k], 0x20));
        _mm256_store_ps(dst + (4 + k) * NMAX, _mm256_permute2f128_ps(r[k], r[4 + k], 0x31));
    }
}
#endif

/* scale q k^T + bias for rows i0..i0+SROWS-1 and columns c0..c0+SCVEC*VL-1 into p (masked columns: -inf) */
AI void score_block(const float *qb, int64_t row, float scale, const float *kt, const float *brow, int64_t n,
                    int64_t d, int64_t i0, int64_t c0, float *p) {
    const float *qr[SROWS];
    for (int r = 0; r < SROWS; r++) qr[r] = qb + (i0 + r < n ? i0 + r : n - 1) * row; /* tail rows: repeat */
    vf acc[SROWS][SCVEC];
    for (int r = 0; r < SROWS; r++)
        for (int c = 0; c < SCVEC; c++) acc[r][c] = vzero();
    for (int64_t e = 0; e < d; e++) {
        const float *k = kt + e * NMAX + c0;
        vf kv[SCVEC];
        for (int c = 0; c < SCVEC; c++) kv[c] = vloada(k + c * VL);
        for (int r = 0; r < SROWS; r++) {
            vf q = vset1(qr[r][e]);
            for (int c = 0; c < SCVEC; c++) acc[r][c] = vfmadd(q, kv[c], acc[r][c]);
        }
    }
    const vf ninf = vset1(-__builtin_inff()), sc = vset1(scale);
    for (int r = 0; r < SROWS && i0 + r < n; r++) {
        const float *b = brow + (i0 + r) * n;
        for (int c = 0; c < SCVEC; c++) {
            const int64_t col = c0 + c * VL;
            const vmask m = vmask_first(n - col);
            vf bv = vmload(m, b + col);
            vstorea(p + (i0 + r) * NMAX + col, vselect(m, vfmadd(acc[r][c], sc, bv), ninf));
        }
    }
}

/* softmax numerators of rows i0..i1-1 in place, 1/row sums into inv */
AI void softmax_rows(float *p, float *inv, int64_t n, int64_t i0, int64_t i1) {
    const int64_t nvec = (n + VL - 1) / VL;
    for (int64_t i = i0; i < i1; i++) {
        float *pr = p + i * NMAX;
        vf mv = vloada(pr);
        for (int64_t c = 1; c < nvec; c++) mv = vmax(mv, vloada(pr + c * VL));
        const vf mx = vset1(vhmax(mv));
        vf sum = vzero();
        for (int64_t c = 0; c < nvec; c++) {
            vf ev = vselect(vmask_first(n - c * VL), vexp(vsub(vloada(pr + c * VL), mx)), vzero());
            sum = vadd(sum, ev);
            vstorea(pr + c * VL, ev);
        }
        inv[i] = 1.0f / vhsum(sum);
    }
}

/* out rows i0..i0+RV-1 = (p v) / row sum; NV = vectors per head dim (the last one masked by dm) */
AI void value_rows(const float *p, const float *inv, const float *v, int64_t row, int64_t n, int64_t i0,
                   vmask dm, float *o, int64_t orow, const int NV, const int RV) {
    vf acc[12][4];
    const float *pr[12];
    for (int r = 0; r < RV; r++) {
        pr[r] = p + (i0 + r < n ? i0 + r : n - 1) * NMAX;
        for (int c = 0; c < NV; c++) acc[r][c] = vzero();
    }
    for (int64_t j = 0; j < n; j++) {
        const float *vj = v + j * row;
        vf vv[4];
        for (int c = 0; c < NV - 1; c++) vv[c] = vload(vj + c * VL);
        vv[NV - 1] = vmload(dm, vj + (NV - 1) * VL);
        for (int r = 0; r < RV; r++) {
            vf pv = vset1(pr[r][j]);
            for (int c = 0; c < NV; c++) acc[r][c] = vfmadd(pv, vv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < RV && i0 + r < n; r++) {
        vf s = vset1(inv[i0 + r]);
        float *dst = o + (i0 + r) * orow;
        for (int c = 0; c < NV - 1; c++) vstore(dst + c * VL, vmul(acc[r][c], s));
        vmstore(dst + (NV - 1) * VL, dm, vmul(acc[r][NV - 1], s));
    }
}

AI void head_values(const float *p, const float *inv, const float *vb, int64_t row, int64_t n, int64_t d, float *o,
                    int64_t orow) {
    const int nv = (int)((d + VL - 1) / VL);
    const vmask dm = vmask_first(d - (nv - 1) * VL);
#if VL == 16
    for (int64_t i0 = 0; i0 < n; i0 += 8) {
        if (nv == 1) value_rows(p, inv, vb, row, n, i0, dm, o, orow, 1, 8);
        else value_rows(p, inv, vb, row, n, i0, dm, o, orow, 2, 8);
    }
#else
    const int rv = nv == 1 ? 12 : (nv == 2 ? 6 : (nv == 3 ? 4 : 3));
    for (int64_t i0 = 0; i0 < n; i0 += rv) {
        if (nv == 1) value_rows(p, inv, vb, row, n, i0, dm, o, orow, 1, 12);
        else if (nv == 2) value_rows(p, inv, vb, row, n, i0, dm, o, orow, 2, 6);
        else if (nv == 3) value_rows(p, inv, vb, row, n, i0, dm, o, orow, 3, 4);
        else value_rows(p, inv, vb, row, n, i0, dm, o, orow, 4, 3);
    }
#endif
}

/* returns 0, or 1 if a thread could not allocate its scratch buffer */
int swinir_window_attention_f32(const float *qkv, const float *bias, const int64_t *group_end, int64_t groups,
                                 float *out, int64_t wbase, int64_t count, int64_t n, int64_t heads, int64_t d,
                                 float scale) {
    const int64_t C = heads * d, row = 3 * C;
    int failed = 0;
    /* built with -fopenmp and loaded into a process where PyTorch already loaded libgomp.so.1: this uses
       PyTorch's own OpenMP threads (hot after the qkv GEMM), not a second pool competing for the cores */
#pragma omp parallel
    {
        /* flush denormals to zero (FTZ and DAZ) in this thread while it runs the kernel: the shift mask's
           -100 makes probabilities of ~1e-38 whose products with v are denormal, and Intel cores take a
           microcode assist for each (shifted windows ran 2.5x slower than plain ones); restored below */
        const unsigned int csr = _mm_getcsr();
        _mm_setcsr(csr | 0x8040);
        /* k of one window transposed, all heads: kt[(h * d + e) * NMAX + j], padded to VL columns */
        const int64_t cpad = (C + VL - 1) / VL * VL;
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
            for (int64_t j0 = 0; j0 < NMAX; j0 += VL)
                for (int64_t c0 = 0; c0 < C; c0 += VL) {
                    int rows = n - j0 >= VL ? VL : (n > j0 ? (int)(n - j0) : 0);
                    transpose_block(win + j0 * row + C + c0, row, rows, vmask_first(C - c0), kt + c0 * NMAX + j0);
                }
            for (int64_t h = 0; h < heads; h++) {
                const float *qb = win + h * d, *vb = qb + 2 * C;
                const float *brow = bias + (g * heads + h) * n * n;
                for (int64_t i0 = 0; i0 < n; i0 += SROWS) {
                    for (int64_t c0 = 0; c0 < n; c0 += SCVEC * VL)
                        score_block(qb, row, scale, kt + h * d * NMAX, brow, n, d, i0, c0, p);
                    softmax_rows(p, inv, n, i0, i0 + SROWS < n ? i0 + SROWS : n);
                }
                head_values(p, inv, vb, row, n, d, out + w * n * C + h * d, C);
            }
        }
        free(kt);
        _mm_setcsr(csr);
    }
    return failed;
}
