/* Winograd F(2x2, 3x3) transforms for 3x3 / stride 1 / zero-pad 1 convolutions on NHWC fp32 images
 * for SwinIR's CPU inference, one source built per ISA (simd.h).
 *
 * A 3x3 conv computes 9 multiply-adds per output pixel and channel pair; Winograd's F(2x2, 3x3) computes
 * 2x2 output tiles from 4x4 input tiles with 16, i.e. 4 per pixel (2.25x fewer). The transforms below
 * only add and subtract (B and A have entries 0 and +-1), so the rounding stays close to a direct conv;
 * the 16 products are 16 GEMMs (tiles x C_in) x (C_in x C_out) that the caller runs with PyTorch.
 *
 *   input transform:  V[k][t][c] = (B^T d B)[k] for the 4x4 patch d of tile t, channel c
 *   output transform: y = A^T m A (+ bias), m[k] = M_k[t][o] (16 separate (count, out) products),
 *                     written where the 2x2 tile is inside the image
 * Tiles are numbered (b, ty, tx) raster order over ceil(H/2) x ceil(W/2) per image; a call handles tiles
 * [first, first + count) so the caller can keep V and M a few MB.
 */
#include "simd.h"

void swinir_winograd23_input(const float *x, int64_t batch, int64_t h, int64_t w, int64_t channels,
                             int64_t first, int64_t count, float *v) {
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2;
    (void)batch;
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < count; q++) {
        const int64_t p = first + q, b = p / (th * tw), r = p % (th * tw), y0 = 2 * (r / tw) - 1, x0 = 2 * (r % tw) - 1;
        for (int64_t c = 0; c < channels; c += VL) {
            const vmask m = vmask_first(channels - c);
            vf d[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    const int64_t yy = y0 + i, xx = x0 + j;
                    d[i][j] = (yy >= 0 && yy < h && xx >= 0 && xx < w)
                                  ? vmload(m, x + ((b * h + yy) * w + xx) * channels + c)
                                  : vzero();
                }
            vf t[4][4];
            for (int j = 0; j < 4; j++) { /* B^T d: rows */
                t[0][j] = vsub(d[0][j], d[2][j]);
                t[1][j] = vadd(d[1][j], d[2][j]);
                t[2][j] = vsub(d[2][j], d[1][j]);
                t[3][j] = vsub(d[1][j], d[3][j]);
            }
            for (int i = 0; i < 4; i++) { /* (B^T d) B: columns */
                float *o = v + ((int64_t)(4 * i) * count + q) * channels + c;
                const int64_t step = count * channels;
                vmstore(o, m, vsub(t[i][0], t[i][2]));
                vmstore(o + step, m, vadd(t[i][1], t[i][2]));
                vmstore(o + 2 * step, m, vsub(t[i][2], t[i][1]));
                vmstore(o + 3 * step, m, vsub(t[i][1], t[i][3]));
            }
        }
    }
}

void swinir_winograd23_output(const float *const *mk, const float *bias, int64_t batch, int64_t h, int64_t w,
                              int64_t channels, int64_t first, int64_t count, float *y) {
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2;
    (void)batch;
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < count; q++) {
        const int64_t p = first + q, b = p / (th * tw), r = p % (th * tw), y0 = 2 * (r / tw), x0 = 2 * (r % tw);
        for (int64_t c = 0; c < channels; c += VL) {
            const vmask m = vmask_first(channels - c);
            const vf bv = bias ? vmload(m, bias + c) : vzero();
            vf s[2][4];
            for (int j = 0; j < 4; j++) { /* A^T m: rows */
                const int64_t at = q * channels + c;
                vf m0 = vmload(m, mk[j] + at), m1 = vmload(m, mk[4 + j] + at),
                       m2 = vmload(m, mk[8 + j] + at), m3 = vmload(m, mk[12 + j] + at);
                s[0][j] = vadd(vadd(m0, m1), m2);
                s[1][j] = vsub(vsub(m1, m2), m3);
            }
            for (int i = 0; i < 2; i++) { /* (A^T m) A: columns, + bias */
                if (y0 + i >= h) break;
                float *o = y + ((b * h + y0 + i) * w + x0) * channels + c;
                vf a = vadd(vadd(vadd(s[i][0], s[i][1]), s[i][2]), bv);
                vmstore(o, m, a);
                if (x0 + 1 < w) {
                    vf e = vadd(vsub(vsub(s[i][1], s[i][2]), s[i][3]), bv);
                    vmstore(o + channels, m, e);
                }
            }
        }
    }
}

/* Winograd F(4x4, 3x3): 4x4 output tiles from 6x6 input tiles, 36 products per tile, i.e. 2.25 multiply-adds
 * per output pixel and channel pair (4x fewer than direct, 1.8x fewer than F(2x2, 3x3)), at the price of
 * transforms with coefficients up to 8 (Lavin & Gray's points 0, +-1, +-2, inf), which round a few times worse
 * than F(2x2, 3x3). Same layouts as above with 36 in place of 16 and tiles of 4x4 pixels.
 *
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 */
AI void bt6(const vf d[6], vf t[6]) {
    const vf four = vset1(4.0f), five = vset1(5.0f), two = vset1(2.0f);
    const vf a = vsub(d[4], d[2]), b = vsub(d[3], d[1]); /* d4 - d2, d3 - d1 */
    const vf c = vfnmadd(four, d[2], d[4]);              /* d4 - 4 d2 */
    const vf e = vfnmadd(four, d[1], d[3]);              /* d3 - 4 d1 */
    t[0] = vfnmadd(five, d[2], vfmadd(four, d[0], d[4]));
    t[1] = vadd(c, e);
    t[2] = vsub(c, e);
    t[3] = vfmadd(two, b, a);
    t[4] = vfnmadd(two, b, a);
    t[5] = vfnmadd(five, d[3], vfmadd(four, d[1], d[5]));
}

void swinir_winograd43_input(const float *x, int64_t batch, int64_t h, int64_t w, int64_t channels,
                             int64_t first, int64_t count, float *v) {
    const int64_t th = (h + 3) / 4, tw = (w + 3) / 4;
    (void)batch;
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < count; q++) {
        const int64_t p = first + q, b = p / (th * tw), r = p % (th * tw), y0 = 4 * (r / tw) - 1, x0 = 4 * (r % tw) - 1;
        for (int64_t c = 0; c < channels; c += VL) {
            const vmask m = vmask_first(channels - c);
            vf t[6][6];
            for (int i = 0; i < 6; i++) { /* d B per input row i: t[i][k] */
                const int64_t yy = y0 + i;
                vf d[6];
                for (int j = 0; j < 6; j++) {
                    const int64_t xx = x0 + j;
                    d[j] = (yy >= 0 && yy < h && xx >= 0 && xx < w) ? vmload(m, x + ((b * h + yy) * w + xx) * channels + c)
                                                                    : vzero();
                }
                bt6(d, t[i]);
            }
            const int64_t step = count * channels;
            for (int k = 0; k < 6; k++) { /* B^T (d B): column k */
                vf col[6], o[6];
                for (int i = 0; i < 6; i++) col[i] = t[i][k];
                bt6(col, o);
                for (int i = 0; i < 6; i++) vmstore(v + (int64_t)(6 * i + k) * step + q * channels + c, m, o[i]);
            }
        }
    }
}

AI void at6(const vf m[6], vf y[4]) {
    const vf two = vset1(2.0f), four = vset1(4.0f), eight = vset1(8.0f);
    const vf s12 = vadd(m[1], m[2]), d12 = vsub(m[1], m[2]), s34 = vadd(m[3], m[4]), d34 = vsub(m[3], m[4]);
    y[0] = vadd(vadd(m[0], s12), s34);
    y[1] = vfmadd(two, d34, d12);
    y[2] = vfmadd(four, s34, s12);
    y[3] = vadd(vfmadd(eight, d34, d12), m[5]);
}

void swinir_winograd43_output(const float *const *mk, const float *bias, int64_t batch, int64_t h, int64_t w,
                              int64_t channels, int64_t first, int64_t count, float *y) {
    const int64_t th = (h + 3) / 4, tw = (w + 3) / 4;
    (void)batch;
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < count; q++) {
        const int64_t p = first + q, b = p / (th * tw), r = p % (th * tw), y0 = 4 * (r / tw), x0 = 4 * (r % tw);
        for (int64_t c = 0; c < channels; c += VL) {
            const vmask m = vmask_first(channels - c);
            const vf bv = bias ? vmload(m, bias + c) : vzero();
            const int64_t at = q * channels + c;
            vf s[4][6];
            for (int j = 0; j < 6; j++) { /* A^T m: column j */
                vf col[6], o[4];
                for (int i = 0; i < 6; i++) col[i] = vmload(m, mk[6 * i + j] + at);
                at6(col, o);
                for (int i = 0; i < 4; i++) s[i][j] = o[i];
            }
            for (int i = 0; i < 4; i++) { /* (A^T m) A: row i, + bias */
                if (y0 + i >= h) break;
                vf o[4];
                at6(s[i], o);
                float *dst = y + ((b * h + y0 + i) * w + x0) * channels + c;
                for (int j = 0; j < 4 && x0 + j < w; j++) vmstore(dst + j * channels, m, vadd(o[j], bv));
            }
        }
    }
}
