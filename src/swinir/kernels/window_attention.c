/* Fused window attention for SwinIR inference on x86-64 CPUs (fp32 math), one source built per ISA (simd.h).
 *
 * One call handles `count` consecutive windows: for every window and head it computes
 * softmax(scale * q k^T + bias[group]) v with the whole 64x64 score tile kept in L1, reading q, k, v straight
 * out of the qkv projection's output and writing the heads side by side, ready for the output projection.
 * PyTorch's flash kernel reaches ~30 GFLOP/s on these tiny tiles (head dim 30, 64 tokens); this one has no
 * per-tile dispatch, no online-softmax rescaling and no layout copies.
 *
 * Layouts (all contiguous; qkv and out fp32 or bf16, the rest fp32):
 *   qkv  (windows, n, 3, heads, d)   the nn.Linear(C, 3C) output, C = heads * d
 *   bias (groups, heads, n, n)       relative-position bias (+ shift mask) per window group
 *   bias_t (groups, heads, n, n)     the same transposed per head (key-major); given, the transposed path runs
 *   group_end (groups,)              cumulative window counts: window i of this call uses the first g with
 *                                    wbase + i < group_end[g] (windows are sorted by shift-mask group)
 *   out  (windows, n, heads, d)
 * Limits: n <= 64 (window 8), d <= 32. The caller checks them.
 *
 * Register blocking per ISA (32 vector registers on AVX-512, 16 on AVX2): scores in SROWS x SCVEC-vector
 * tiles, p v in RV rows x NV vectors (NV = vectors per head dim). With bias_t the transposed path further
 * down runs instead (queries along the lanes; faster at every d measured); on AVX-512 with d > 16 its p v
 * goes back to rows (values_rows_direct), written straight into the output. With bf16 qkv the scores come
 * from AVX512-BF16 dot products, or AMX tile products where the CPU and Linux allow (scores_amx).
 */
#include <stdlib.h>
#include <string.h>

#include "simd.h"

#define NMAX 64
/* AVX512-BF16 dot products for bf16 scores: in the AVX-512 build, with a compiler that knows them (GCC 10,
 * clang 9); used only where the CPU reports them at run time */
#if VL == 16 && ((defined(__clang__) && __clang_major__ >= 9) || (!defined(__clang__) && __GNUC__ >= 10))
#define BF16_DOT 1
#else
#define BF16_DOT 0
#endif
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

/* one window, all heads, row by row: k of all heads transposed into kt, then per head the scores, softmax
 * and p v of SROWS query rows at a time; o: n rows of C */
__attribute__((noinline)) static void window_rowwise(const float *win, const float *bias, int64_t n, int64_t heads,
                                                     int64_t d, float scale, float *kt, float *p, float *o) {
    const int64_t C = heads * d, row = 3 * C;
    float inv[NMAX];
    for (int64_t j0 = 0; j0 < NMAX; j0 += VL)
        for (int64_t c0 = 0; c0 < C; c0 += VL) {
            int rows = n - j0 >= VL ? VL : (n > j0 ? (int)(n - j0) : 0);
            transpose_block(win + j0 * row + C + c0, row, rows, vmask_first(C - c0), kt + c0 * NMAX + j0);
        }
    for (int64_t h = 0; h < heads; h++) {
        const float *qb = win + h * d, *vb = qb + 2 * C;
        const float *brow = bias + h * n * n;
        for (int64_t i0 = 0; i0 < n; i0 += SROWS) {
            for (int64_t c0 = 0; c0 < n; c0 += SCVEC * VL)
                score_block(qb, row, scale, kt + h * d * NMAX, brow, n, d, i0, c0, p);
            softmax_rows(p, inv, n, i0, i0 + SROWS < n ? i0 + SROWS : n);
        }
        head_values(p, inv, vb, row, n, d, o + h * d, C);
    }
}

/* ---- the transposed path (used for every d where the caller passes bias_t): softmax down the columns ----
 *
 * With d of 10-16 the row-wise kernel above fills 10-12 of 16 lanes in p v, and every score row pays a
 * horizontal max and sum. Here the tile is s^T[j][i] (key j, query i), so that the queries lie along the
 * lanes: the softmax over keys is a running vmax and vadd down the rows, 1/sum is one vector division, and
 * (p v)^T[e][i] = sum_j v[j][e] p^T[j][i] uses all lanes whatever d is (measured faster at d = 30 and 32
 * too). Scores, the max and exp are the same operations in the same order as above (bit-identical); only
 * the order of the softmax denominator's sum differs (one rounding, ~1e-7 relative). Needs the bias
 * transposed (groups, heads, n_key, n_query). */

/* vector k of a VL x VL transpose of src (rows beyond `rows` and masked-off columns read as 0), stored
 * masked (dmask; all lanes where `full`) at dst + k * dstride for k < drows */
#if VL == 16
AI void transpose_store(const float *src, int64_t stride, int rows, vmask cols, float *dst, int64_t dstride,
                        int drows, vmask dmask, int full) {
    __m512 r[16], t[16], o[16];
    for (int i = 0; i < 16; i++) r[i] = i < rows ? vmload(cols, src + i * stride) : vzero();
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
#define PD(x) _mm512_castps_pd(x)
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(PD(t[i]), PD(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(PD(t[i]), PD(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(PD(t[i + 1]), PD(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(PD(t[i + 1]), PD(t[i + 3])));
#undef PD
    }
    for (int k = 0; k < 4; k++) {
        __m512 a = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x44), b = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x44);
        __m512 c = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xEE), e = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xEE);
        o[k] = _mm512_shuffle_f32x4(a, b, 0x88);
        o[4 + k] = _mm512_shuffle_f32x4(a, b, 0xDD);
        o[8 + k] = _mm512_shuffle_f32x4(c, e, 0x88);
        o[12 + k] = _mm512_shuffle_f32x4(c, e, 0xDD);
    }
    if (full) /* AVX2's masked stores are slow on AMD cores: plain stores where the whole row is wanted */
        for (int k = 0; k < drows; k++) vstore(dst + k * dstride, o[k]);
    else
        for (int k = 0; k < drows; k++) vmstore(dst + k * dstride, dmask, o[k]);
}
#else
AI void transpose_store(const float *src, int64_t stride, int rows, vmask cols, float *dst, int64_t dstride,
                        int drows, vmask dmask, int full) {
    __m256 r[8], t[8], o[8];
    for (int i = 0; i < 8; i++) r[i] = i < rows ? vmload(cols, src + i * stride) : vzero();
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {
        o[k] = _mm256_permute2f128_ps(r[k], r[4 + k], 0x20);
        o[4 + k] = _mm256_permute2f128_ps(r[k], r[4 + k], 0x31);
    }
    if (full) /* AVX2's masked stores are slow on AMD cores: plain stores where the whole row is wanted */
        for (int k = 0; k < drows; k++) vstore(dst + k * dstride, o[k]);
    else
        for (int k = 0; k < drows; k++) vmstore(dst + k * dstride, dmask, o[k]);
}
#endif

/* scale * acc + bias^T for s^T rows j0..j0+SROWS-1 and query vectors c0.. into st (query lanes >= n: 0);
 * the running column max into mx. The epilogue of both score_t_block variants. */
AI void store_scores_t(vf acc[SROWS][SCVEC], float scale, const float *bt, int64_t n, int64_t j0, int64_t c0,
                       float *st, float *mx) {
    const vf sc = vset1(scale);
    for (int c = 0; c < SCVEC; c++) {
        const int64_t col = c0 + c * VL;
        if (col >= n) break;
        const vmask m = vmask_first(n - col);
        vf mv = vloada(mx + col);
        for (int r = 0; r < SROWS && j0 + r < n; r++) {
            vf s = vselect(m, vfmadd(acc[r][c], sc, vmload(m, bt + (j0 + r) * n + col)), vzero());
            vstorea(st + (j0 + r) * NMAX + col, s);
            mv = vmax(mv, s);
        }
        vstorea(mx + col, mv);
    }
}

/* s^T rows j0..j0+SROWS-1, query vectors c0.. (SCVEC of them) = scale k q^T + bias^T into st; the running
 * column max into mx. Query lanes >= n hold 0 (never written out). */
AI void score_t_block(const float *qt, const float *kb, int64_t row, float scale, const float *bt, int64_t n,
                      int64_t d, int64_t j0, int64_t c0, float *st, float *mx) {
    const float *kr[SROWS];
    for (int r = 0; r < SROWS; r++) kr[r] = kb + (j0 + r < n ? j0 + r : n - 1) * row;
    vf acc[SROWS][SCVEC];
    for (int r = 0; r < SROWS; r++)
        for (int c = 0; c < SCVEC; c++) acc[r][c] = vzero();
    for (int64_t e = 0; e < d; e++) {
        vf qv[SCVEC];
        for (int c = 0; c < SCVEC; c++) qv[c] = vloada(qt + e * NMAX + c0 + c * VL);
        for (int r = 0; r < SROWS; r++) {
            vf k = vset1(kr[r][e]);
            for (int c = 0; c < SCVEC; c++) acc[r][c] = vfmadd(qv[c], k, acc[r][c]);
        }
    }
    store_scores_t(acc, scale, bt, n, j0, c0, st, mx);
}

/* (p v)^T for query vector c of one head, D = d a constant: exp, the column sums and p v in one pass over
 * the keys, p never stored; ot[e * NMAX + i]. For AVX-512 and d <= FUSED_D (D accumulators). */
#define FUSED_D 16
AI void values_t_fused(const float *st, const float *mx, const float *vb, int64_t row, int64_t n, int64_t c,
                       float *ot, const int D) {
    vf acc[FUSED_D];
    for (int e = 0; e < D; e++) acc[e] = vzero();
    const vf m = vloada(mx + c * VL);
    vf sum = vzero();
    for (int64_t j = 0; j < n; j++) {
        const vf p = vexp_finite(vsub(vloada(st + j * NMAX + c * VL), m));
        sum = vadd(sum, p);
        const float *vj = vb + j * row;
        for (int e = 0; e < D; e++) acc[e] = vfmadd(vset1(vj[e]), p, acc[e]);
    }
    const vf inv = vdiv(vset1(1.0f), sum);
    for (int e = 0; e < D; e++) vstorea(ot + e * NMAX + c * VL, vmul(acc[e], inv));
}

/* the two-pass form (AVX2, or d > FUSED_D): exp in place with the column sums, then (p v)^T in tiles of EB
 * value columns x IV query vectors (IV * VL = 16 queries on AVX2, 64 on AVX-512) */
#if VL == 16
#define IV 4
#else
#define IV 2
#endif
AI void values_t_tile(const float *st, const float *inv, const float *vb, int64_t row, int64_t n, int64_t d,
                      int64_t e0, int64_t c0, float *ot, const int EB) {
    const float *vc[6];
    for (int r = 0; r < EB; r++) vc[r] = vb + (e0 + r < d ? e0 + r : d - 1);
    vf acc[6][IV];
    for (int r = 0; r < EB; r++)
        for (int c = 0; c < IV; c++) acc[r][c] = vzero();
    for (int64_t j = 0; j < n; j++) {
        vf pv[IV];
        for (int c = 0; c < IV; c++) pv[c] = vloada(st + j * NMAX + c0 + c * VL);
        for (int r = 0; r < EB; r++) {
            const vf v = vset1(vc[r][j * row]);
            for (int c = 0; c < IV; c++) acc[r][c] = vfmadd(v, pv[c], acc[r][c]);
        }
    }
    vf iv[IV];
    for (int c = 0; c < IV; c++) iv[c] = vloada(inv + c0 + c * VL);
    for (int r = 0; r < EB && e0 + r < d; r++)
        for (int c = 0; c < IV; c++) vstorea(ot + (e0 + r) * NMAX + c0 + c * VL, vmul(acc[r][c], iv[c]));
}

/* softmax numerators in place down the columns of st, 1/column sums into inv; query vectors up to IV * ngroup
 * (the padding of the last group: zeros, never written out) */
AI void exp_columns(float *st, const float *mx, float *inv, int64_t n, int64_t ncol) {
    const int64_t nvec = (n + VL - 1) / VL;
    for (int64_t c = 0; c < ncol; c++) {
        if (c >= nvec) {
            for (int64_t j = 0; j < n; j++) vstorea(st + j * NMAX + c * VL, vzero());
            vstorea(inv + c * VL, vzero());
            continue;
        }
        const vf m = vloada(mx + c * VL);
        vf sum = vzero();
        for (int64_t j = 0; j < n; j++) {
            const vf p = vexp_finite(vsub(vloada(st + j * NMAX + c * VL), m));
            sum = vadd(sum, p);
            vstorea(st + j * NMAX + c * VL, p);
        }
        vstorea(inv + c * VL, vdiv(vset1(1.0f), sum));
    }
}

AI void head_values_two_pass(float *st, const float *mx, const float *vb, int64_t row, int64_t n, int64_t d,
                             float *ot) {
    float inv[NMAX] __attribute__((aligned(64)));
    const int64_t nvec = (n + VL - 1) / VL, ngroup = (nvec + IV - 1) / IV;
    exp_columns(st, mx, inv, n, IV * ngroup);
    int64_t eb = d < 6 ? d : 6; /* value columns per tile: of 6, 5, 4 the one that pads d the least */
    for (int64_t e = 5; e >= 4 && d > 6; e--)
        if ((d + e - 1) / e * e < (d + eb - 1) / eb * eb) eb = e;
    for (int64_t e0 = 0; e0 < d; e0 += eb)
        for (int64_t c0 = 0; c0 < IV * ngroup * VL; c0 += IV * VL) {
            switch (eb) {
#define CASE(E) case E: values_t_tile(st, inv, vb, row, n, d, e0, c0, ot, E); break;
                CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
#undef CASE
            }
        }
}

#if VL == 16
/* AVX-512, FUSED_D < d <= 32: p v straight into the output rows (queries i0..i0+R-1, the head dim in two
 * vectors, p^T[j][i] broadcast from st), so no (p v)^T tile and no transpose back; the same products summed
 * over the keys in the same order as values_t_tile (bit-identical) */
#define DIRECT_D(d) ((d) > FUSED_D)
AI void values_rows_direct(const float *st, const float *inv, const float *vb, int64_t row, int64_t n,
                           int64_t i0, vmask dm, float *o, int64_t orow, const int R) {
    vf acc[11][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = vzero();
    for (int64_t j = 0; j < n; j++) {
        const vf v0 = vload(vb + j * row), v1 = vmload(dm, vb + j * row + VL);
        const float *pj = st + j * NMAX + i0;
        for (int r = 0; r < R; r++) {
            const vf p = vset1(pj[r]);
            acc[r][0] = vfmadd(v0, p, acc[r][0]);
            acc[r][1] = vfmadd(v1, p, acc[r][1]);
        }
    }
    for (int r = 0; r < R; r++) {
        const vf s = vset1(inv[i0 + r]);
        vstore(o + (i0 + r) * orow, vmul(acc[r][0], s));
        vmstore(o + (i0 + r) * orow + VL, dm, vmul(acc[r][1], s));
    }
}

AI void head_values_direct(float *st, const float *mx, const float *vb, int64_t row, int64_t n, int64_t d, float *o,
                           int64_t orow) {
    float inv[NMAX] __attribute__((aligned(64)));
    exp_columns(st, mx, inv, n, (n + VL - 1) / VL);
    const vmask dm = vmask_first(d - VL);
    /* the queries in blocks of at most 11 rows, as even as they go (64 = 4 x 11 + 2 x 10): up to 22
       accumulators, no padding rows */
    const int64_t nb = (n + 10) / 11, base = n / nb, extra = n % nb;
    for (int64_t b = 0, i0 = 0; b < nb; b++) {
        const int64_t rows = base + (b < extra);
        switch (rows) {
#define CASE(R) case R: values_rows_direct(st, inv, vb, row, n, i0, dm, o, orow, R); break;
            CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8) CASE(9) CASE(10) CASE(11)
#undef CASE
        }
        i0 += rows;
    }
}
#else
#define DIRECT_D(d) 0
#endif

/* (p v) of one head: into ot (transposed, d x NMAX) or, where DIRECT_D(d), into o's rows */
AI void head_values_t(float *st, const float *mx, const float *vb, int64_t row, int64_t n, int64_t d, float *ot,
                      float *o, int64_t orow) {
#if VL == 16
    if (DIRECT_D(d)) {
        head_values_direct(st, mx, vb, row, n, d, o, orow);
        return;
    }
    if (d <= FUSED_D) {
        for (int64_t c = 0; c * VL < n; c++) {
            switch (d) {
#define CASE(D) case D: values_t_fused(st, mx, vb, row, n, c, ot, D); break;
                CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
                CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14) CASE(15) CASE(16)
#undef CASE
            }
        }
        return;
    }
#endif
    (void)o, (void)orow;
    head_values_two_pass(st, mx, vb, row, n, d, ot);
}

#if BF16_DOT
/* score_t_block from the bf16 qkv itself with AVX512-BF16 dot products, two key/query dims per instruction
 * (the products of bf16 numbers are exact; the pairwise sums round as vdpbf16ps does, ~1 fp32 ulp from the
 * fp32 path): qt2[(e / 2) * NMAX + i] holds the pair (q[i][e], q[i][e + 1]), kb the window's bf16 k. */
__attribute__((target("avx512bf16"))) AI void score_t_block_dot(const float *qt2, const uint16_t *kb, int64_t row,
                                                                 float scale, const float *bt, int64_t n,
                                                                 int64_t d, int64_t j0, int64_t c0, float *st,
                                                                 float *mx) {
    const uint16_t *kr[SROWS];
    for (int r = 0; r < SROWS; r++) kr[r] = kb + (j0 + r < n ? j0 + r : n - 1) * row;
    vf acc[SROWS][SCVEC];
    for (int r = 0; r < SROWS; r++)
        for (int c = 0; c < SCVEC; c++) acc[r][c] = vzero();
    for (int64_t e = 0; e < d; e += 2) {
        __m512bh qv[SCVEC];
        for (int c = 0; c < SCVEC; c++) qv[c] = (__m512bh)_mm512_load_si512(qt2 + e / 2 * NMAX + c0 + c * VL);
        for (int r = 0; r < SROWS; r++) {
            uint32_t pair;
            memcpy(&pair, kr[r] + e, 4);
            const __m512bh k = (__m512bh)_mm512_set1_epi32((int)pair);
            for (int c = 0; c < SCVEC; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], k, qv[c]);
        }
    }
    store_scores_t(acc, scale, bt, n, j0, c0, st, mx);
}
#endif

#if BF16_DOT && ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11))
/* AMX tiles for the bf16 scores (n = 64, even d): on a Xeon with AMX, vdpbf16ps measured no faster than
 * the fp32 FMAs (it is the p v and exp that use both FMA ports), while one tile product does a 16 x 16
 * score block of up to 32 dims. Tiles: 0 = k rows of 16 keys (A), 1-4 = q pairs of the four 16-query
 * blocks (B, qt2's layout as is), 5 = the 16x16 score block (C). */
#define AMX 1
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
struct amx_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* whether AMX-BF16 runs here: the CPU has it and Linux lets this process use the tile data (asked once) */
static int amx_usable(void) {
    static int state = -1; /* racy but idempotent */
    if (state < 0) {
        unsigned a, b, c, e;
        int ok = __get_cpuid_count(7, 0, &a, &b, &c, &e) && (e >> 22 & 1) && (e >> 24 & 1);
        if (ok) { /* ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA (18), then ARCH_GET_XCOMP_PERM to check */
            unsigned long bits = 0;
            ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0 && syscall(SYS_arch_prctl, 0x1022, &bits) == 0 &&
                 (bits >> 18 & 1);
        }
        state = ok;
    }
    return state;
}

__attribute__((noinline, target("amx-tile"))) static void amx_begin(int64_t d) {
    struct amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    cfg.rows[0] = 16, cfg.colsb[0] = (uint16_t)(2 * d);
    for (int t = 1; t <= 4; t++) cfg.rows[t] = (uint8_t)(d / 2), cfg.colsb[t] = 64;
    cfg.rows[5] = 16, cfg.colsb[5] = 64;
    __asm__ volatile("" : : "r"(&cfg) : "memory"); /* GCC's ldtilecfg asm declares only 8 bytes read */
    _tile_loadconfig(&cfg);
}

__attribute__((noinline, target("amx-tile"))) static void amx_end(void) { _tile_release(); }

/* s^T of one head (64 x 64) by tiles into st, then scale * s + bias^T and the column max */
__attribute__((always_inline, target("amx-tile,amx-bf16"))) static inline void scores_amx(
    const float *qt2, const uint16_t *kb, int64_t row, float scale, const float *bt, float *st, float *mx) {
    _tile_loadd(1, qt2, NMAX * 4);
    _tile_loadd(2, qt2 + 16, NMAX * 4);
    _tile_loadd(3, qt2 + 32, NMAX * 4);
    _tile_loadd(4, qt2 + 48, NMAX * 4);
    const __m512 sc = _mm512_set1_ps(scale);
    __m512 m[4];
    for (int c = 0; c < 4; c++) m[c] = _mm512_set1_ps(-__builtin_inff());
    for (int j0 = 0; j0 < NMAX; j0 += 16) {
        _tile_loadd(0, kb + j0 * row, row * 2);
#define BLOCK(T, C)                                                                                              \
    _tile_zero(5);                                                                                               \
    _tile_dpbf16ps(5, 0, T);                                                                                     \
    _tile_stored(5, st + j0 * NMAX + (C) * 16, NMAX * 4);                                                        \
    for (int j = j0; j < j0 + 16; j++) {                                                                         \
        __m512 s = _mm512_fmadd_ps(_mm512_load_ps(st + j * NMAX + (C) * 16), sc,                                 \
                                   _mm512_loadu_ps(bt + j * NMAX + (C) * 16));                                   \
        _mm512_store_ps(st + j * NMAX + (C) * 16, s);                                                            \
        m[C] = _mm512_max_ps(m[C], s);                                                                           \
    }
        BLOCK(1, 0) BLOCK(2, 1) BLOCK(3, 2) BLOCK(4, 3)
#undef BLOCK
    }
    for (int c = 0; c < 4; c++) _mm512_store_ps(mx + c * 16, m[c]);
}
#else
#define AMX 0
#endif

/* the output of all heads: ot (C x NMAX) transposed into o (n rows of C) */
AI void store_transposed(const float *ot, int64_t n, int64_t C, float *o) {
    for (int64_t i0 = 0; i0 < n; i0 += VL)
        for (int64_t c0 = 0; c0 < C; c0 += VL) {
            const int rows = C - c0 >= VL ? VL : (int)(C - c0), drows = n - i0 >= VL ? VL : (int)(n - i0);
            transpose_store(ot + c0 * NMAX + i0, NMAX, rows, vmask_first(n - i0), o + i0 * C + c0, C, drows,
                            vmask_first(C - c0), rows == VL);
        }
}

/* columns 0..cols-1 of the window's n rows (stride row) transposed into qt (cols x NMAX) */
AI void transpose_q(const float *src, int64_t row, int64_t n, int64_t cols, float *qt) {
    for (int64_t j0 = 0; j0 < NMAX; j0 += VL)
        for (int64_t c0 = 0; c0 < cols; c0 += VL) {
            int rows = n - j0 >= VL ? VL : (n > j0 ? (int)(n - j0) : 0);
            transpose_block(src + j0 * row + c0, row, rows, vmask_first(cols - c0), qt + c0 * NMAX + j0);
        }
}

/* one window, all heads, transposed: q of all heads transposed into qt, (p v)^T into ot, then ot
 * transposed into o (n rows of C); where DIRECT_D(d), q per head and p v straight into o */
__attribute__((noinline)) static void window_transposed(const float *win, const float *bias_t, int64_t n,
                                                        int64_t heads, int64_t d, float scale, float *qt,
                                                        float *ot, float *st, float *o, const char *next,
                                                        int64_t next_bytes) {
    const int64_t C = heads * d, row = 3 * C;
    /* the next window's qkv into L2 while this one runs, spread over the heads' score blocks */
    const int64_t lines = next ? (next_bytes + 63) / 64 : 0, nblk = heads * ((n + SROWS - 1) / SROWS);
    const int64_t per_blk = (lines + nblk - 1) / nblk;
    int64_t pf = 0;
    float mx[NMAX] __attribute__((aligned(64)));
    /* where p v goes straight into o, q is transposed head by head (qt stays a small tile in L1) */
    const int per_head = DIRECT_D(d);
    if (!per_head) transpose_q(win, row, n, C, qt);
    for (int64_t h = 0; h < heads; h++) {
        const float *kb = win + C + h * d, *vb = win + 2 * C + h * d;
        const float *bt = bias_t + h * n * n;
        if (per_head) transpose_q(win + h * d, row, n, d, qt);
        const float *qh = per_head ? qt : qt + h * d * NMAX;
        for (int64_t c = 0; c < NMAX; c += VL) vstorea(mx + c, vset1(-__builtin_inff()));
        for (int64_t j0 = 0; j0 < n; j0 += SROWS) {
            for (int64_t k = 0; k < per_blk && pf < lines; k++, pf++) _mm_prefetch(next + pf * 64, _MM_HINT_T1);
            for (int64_t c0 = 0; c0 < n; c0 += SCVEC * VL)
                score_t_block(qh, kb, row, scale, bt, n, d, j0, c0, st, mx);
        }
        head_values_t(st, mx, vb, row, n, d, ot + h * d * NMAX, o + h * d, C);
    }
    if (!DIRECT_D(d)) store_transposed(ot, n, C, o);
}

#if BF16_DOT
/* the same with the scores from the window's bf16 qkv (raw) by score_t_block_dot: qt holds q's bf16 pairs,
 * the same transpose on (n x C/2) 32-bit words; v from the widened fp32 win. Even d only. */
#if AMX
#define DOT_TARGET "avx512bf16,amx-tile,amx-bf16"
#else
#define DOT_TARGET "avx512bf16"
#endif
__attribute__((noinline, target(DOT_TARGET))) static void window_transposed_dot(
    const float *win, const uint16_t *raw, const float *bias_t, int64_t n, int64_t heads, int64_t d, float scale,
    float *qt, float *ot, float *st, float *o, int amx) {
    const int64_t C = heads * d, row = 3 * C;
    float mx[NMAX] __attribute__((aligned(64)));
    const float *words = (const float *)raw;
    for (int64_t j0 = 0; j0 < NMAX; j0 += VL)
        for (int64_t c0 = 0; c0 < C / 2; c0 += VL) {
            int rows = n - j0 >= VL ? VL : (n > j0 ? (int)(n - j0) : 0);
            transpose_block(words + j0 * (row / 2) + c0, row / 2, rows, vmask_first(C / 2 - c0), qt + c0 * NMAX + j0);
        }
    for (int64_t h = 0; h < heads; h++) {
        const float *vb = win + 2 * C + h * d;
        const float *bt = bias_t + h * n * n;
#if AMX
        if (amx) {
            scores_amx(qt + h * d / 2 * NMAX, raw + C + h * d, row, scale, bt, st, mx);
            head_values_t(st, mx, vb, row, n, d, ot + h * d * NMAX, o + h * d, C);
            continue;
        }
#else
        (void)amx;
#endif
        for (int64_t c = 0; c < NMAX; c += VL) vstorea(mx + c, vset1(-__builtin_inff()));
        for (int64_t j0 = 0; j0 < n; j0 += SROWS)
            for (int64_t c0 = 0; c0 < n; c0 += SCVEC * VL)
                score_t_block_dot(qt + h * d / 2 * NMAX, raw + C + h * d, row, scale, bt, n, d, j0, c0, st, mx);
        head_values_t(st, mx, vb, row, n, d, ot + h * d * NMAX, o + h * d, C);
    }
    if (!DIRECT_D(d)) store_transposed(ot, n, C, o);
}
#endif

/* fp32 qkv, AVX-512, d > 16: the next window prefetched into L2 (~1.03x at d = 30 per call on a Xeon; AVX2
 * and d <= 16 measured 0.97-1.02x, so not there; bf16 qkv is widened by a sequential pass anyway) */
#define PREFETCH_NEXT(d) DIRECT_D(d)

/* ---- bf16 in and out: widen a window's qkv into fp32 scratch, narrow the output (round to nearest even,
 * as PyTorch's cast; inputs are finite) ---- */
static void widen_bf16(const uint16_t *src, int64_t count, float *dst) {
    int64_t i = 0;
#if VL == 16
    for (; i + 16 <= count; i += 16) {
        __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
#else
    for (; i + 8 <= count; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
#endif
    for (; i < count; i++) {
        uint32_t b = (uint32_t)src[i] << 16;
        memcpy(dst + i, &b, 4);
    }
}

static void narrow_bf16(const float *src, int64_t count, uint16_t *dst) {
    int64_t i = 0;
#if VL == 16
    const __m512i bias = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1);
    for (; i + 16 <= count; i += 16) {
        __m512i u = _mm512_castps_si512(_mm512_loadu_ps(src + i));
        u = _mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
    }
#else
    const __m256i bias = _mm256_set1_epi32(0x7FFF), one = _mm256_set1_epi32(1);
    for (; i + 8 <= count; i += 8) {
        __m256i u = _mm256_castps_si256(_mm256_loadu_ps(src + i));
        u = _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
        u = _mm256_srli_epi32(u, 16);
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(u, u), 0xD8);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_castsi256_si128(packed));
    }
#endif
    for (; i < count; i++) {
        uint32_t u;
        memcpy(&u, src + i, 4);
        dst[i] = (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
    }
}

/* The kernel. qkv and out are fp32, or bf16 where qkv_bf16 / out_bf16 is set (bf16 qkv is widened per
 * window into fp32 scratch; the result is rounded to bf16 on the way out). bf16_dot: with bf16 qkv, even d
 * and the transposed path, the scores by AVX512-BF16 dot products where the CPU has them (AVX-512 build). bias_t (bias transposed per
 * head: (groups, heads, n_key, n_query)) selects the transposed path; NULL, the row-wise one.
 * Returns 0, or 1 if a thread could not allocate its scratch. */
int swinir_window_attention(const void *qkv, int qkv_bf16, const float *bias, const float *bias_t,
                            const int64_t *group_end, int64_t groups, void *out, int out_bf16, int64_t wbase,
                            int64_t count, int64_t n, int64_t heads, int64_t d, float scale, int bf16_dot) {
    const int64_t C = heads * d, row = 3 * C;
    const int transposed = bias_t != NULL;
#if BF16_DOT
    /* bf16 qkv, even d: the scores by AVX512-BF16 dot products where asked and the CPU has them */
    const int dot = transposed && qkv_bf16 && (bf16_dot & 1) && d % 2 == 0 && __builtin_cpu_supports("avx512bf16");
#if AMX
    /* bit 2 of bf16_dot: those scores by AMX tiles where the CPU and the OS allow (whole 64-token windows) */
    const int amx = dot && (bf16_dot & 2) && n == NMAX && amx_usable();
#else
    const int amx = 0;
#endif
#else
    (void)bf16_dot;
#endif
    int failed = 0;
#pragma omp parallel
    {
        /* flush denormals to zero (FTZ and DAZ) in this thread while it runs the kernel: the shift mask's
           -100 makes probabilities of ~1e-38 whose products with v are denormal, and Intel cores take a
           microcode assist for each (shifted windows ran 2.5x slower than plain ones); restored below */
        const unsigned int csr = _mm_getcsr();
        _mm_setcsr(csr | 0x8040);
        const int64_t cpad = (C + VL - 1) / VL * VL;
        /* kt or qt (cpad x NMAX), ot (cpad x NMAX), the widened window (n x row), the fp32 output (n x C) */
        const size_t tile = (size_t)cpad * NMAX, wide = (size_t)((n * row + 15) / 16 * 16);
        const size_t floats = 2 * tile + (qkv_bf16 ? wide : 0) + (out_bf16 ? (size_t)((n * C + 15) / 16 * 16) : 0);
        float *scratch = aligned_alloc(64, floats * sizeof(float));
        if (!scratch) {
#pragma omp atomic write
            failed = 1;
        }
        float *kt = scratch, *ot = scratch + tile, *wbuf = scratch + 2 * tile;
        float *obuf = wbuf + (qkv_bf16 ? wide : 0);
        float p[NMAX * NMAX] __attribute__((aligned(64)));
        memset(p, 0, sizeof p);
#if AMX
        if (amx) amx_begin(d);
#endif
#pragma omp for schedule(static)
        for (int64_t w = 0; w < count; w++) {
            if (!scratch) continue;
            int64_t g = 0;
            while (g < groups - 1 && wbase + w >= group_end[g]) g++;
            const float *win;
            if (qkv_bf16) {
                const uint16_t *src = (const uint16_t *)qkv + w * n * row;
#if BF16_DOT
                if (dot) /* q and k are read as bf16 there: only v widened */
                    for (int64_t j = 0; j < n; j++) widen_bf16(src + j * row + 2 * C, C, wbuf + j * row + 2 * C);
                else
#endif
                    widen_bf16(src, n * row, wbuf);
                win = wbuf;
            } else {
                win = (const float *)qkv + w * n * row;
            }
            float *o = out_bf16 ? obuf : (float *)out + w * n * C;
#if BF16_DOT
            if (transposed && dot)
                window_transposed_dot(win, (const uint16_t *)qkv + w * n * row, bias_t + g * heads * n * n, n,
                                      heads, d, scale, kt, ot, p, o, amx);
            else
#endif
            if (transposed)
                window_transposed(win, bias_t + g * heads * n * n, n, heads, d, scale, kt, ot, p, o,
                                  PREFETCH_NEXT(d) && !qkv_bf16 && w + 1 < count
                                      ? (const char *)qkv + (w + 1) * n * row * 4
                                      : NULL,
                                  n * row * 4);
            else window_rowwise(win, bias + g * heads * n * n, n, heads, d, scale, kt, p, o);
            if (out_bf16) narrow_bf16(obuf, n * C, (uint16_t *)out + w * n * C);
        }
#if AMX
        if (amx) amx_end();
#endif
        free(scratch);
        _mm_setcsr(csr);
    }
    return failed;
}
